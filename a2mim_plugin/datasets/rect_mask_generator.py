"""SimMIM's random block mask for non-square crops (H != W)."""
from typing import Sequence, Tuple, Union

import numpy as np
from mmpretrain.datasets.transforms import SimMIMMaskGenerator
from mmpretrain.registry import TRANSFORMS


def _pair(size: Union[int, Sequence[int]], key: str) -> Tuple[int, int]:
    if isinstance(size, int):
        return size, size
    if isinstance(size, (tuple, list)) and len(size) == 2 and \
            all(isinstance(s, int) for s in size):
        return int(size[0]), int(size[1])
    raise ValueError(f'SimMIMRectMaskGenerator: {key} must be an int or (H, W), got {size!r}')


@TRANSFORMS.register_module()
class SimMIMRectMaskGenerator(SimMIMMaskGenerator):
    """``SimMIMMaskGenerator`` for an (H, W) crop, e.g. after ``RandomResizedCrop(scale=(H, W))``.

    Masks ``ceil(mask_ratio * cells)`` of the ``H/mask_patch_size x W/mask_patch_size`` blocks
    at random and writes the (h, w) ``mask`` on the grid of ``model_patch_size``. For a square
    size it draws the same random numbers and masks as ``SimMIMMaskGenerator``.

    Args:
        input_size: (H, W) of the crop (an int means a square crop). Defaults to 192.
        mask_patch_size: side of a masked block in pixels. Defaults to 32.
        model_patch_size: pixels per mask cell (the backbone stride at the injection point).
            Defaults to 4.
        mask_ratio: share of masked blocks. Defaults to 0.6.
    """

    def __init__(self, input_size: Union[int, Sequence[int]] = 192, mask_patch_size: int = 32,
                 model_patch_size: int = 4, mask_ratio: float = 0.6) -> None:
        height, width = _pair(input_size, 'input_size')
        for side in (height, width):
            if side % mask_patch_size or mask_patch_size % model_patch_size:
                raise ValueError(
                    f'SimMIMRectMaskGenerator: input_size=({height}, {width}) must be a multiple '
                    f'of mask_patch_size={mask_patch_size}, and mask_patch_size a multiple of '
                    f'model_patch_size={model_patch_size}; set input_size to the crop rounded to '
                    f'a multiple of {mask_patch_size}')
        super().__init__(input_size=height, mask_patch_size=mask_patch_size,
                         model_patch_size=model_patch_size, mask_ratio=mask_ratio)
        self.input_size = (height, width)
        self.rand_hw = (height // mask_patch_size, width // mask_patch_size)
        self.token_count = self.rand_hw[0] * self.rand_hw[1]
        self.mask_count = int(np.ceil(self.token_count * mask_ratio))

    def transform(self, results: dict) -> dict:
        """Add the (h, w) int ``mask`` (1 = masked) to ``results``."""
        mask_idx = np.random.permutation(self.token_count)[:self.mask_count]
        mask = np.zeros(self.token_count, dtype=int)
        mask[mask_idx] = 1
        mask = mask.reshape(self.rand_hw)
        results['mask'] = mask.repeat(self.scale, axis=0).repeat(self.scale, axis=1)
        return results
