"""A self-supervised data preprocessor for images of any channel count (multispectral)."""
from typing import Sequence

import torch
from mmpretrain.models.utils import SelfSupDataPreprocessor
from mmpretrain.registry import MODELS


@MODELS.register_module()
class MultiChannelDataPreprocessor(SelfSupDataPreprocessor):
    """``SelfSupDataPreprocessor`` whose ``mean`` / ``std`` may have any length C.

    MMEngine's image preprocessor accepts 1 or 3 values only; 4+-channel images (RGB-NIR,
    multispectral) need one value per channel. Normalisation is ``(x - mean) / std`` per
    channel, as the stock one; 1- and 3-channel images give the same result as the stock one.

    Args:
        mean: C per-channel means (in the loaded value range, e.g. 0-255 or 0-65535).
        std: C per-channel standard deviations.
        to_rgb: swap the channel order 2, 1, 0; only for 3-channel images.
        **kwargs: other ``SelfSupDataPreprocessor`` arguments (``pad_size_divisor``, ...).
    """

    def __init__(self, mean: Sequence[float], std: Sequence[float], to_rgb: bool = False,
                 **kwargs) -> None:
        if len(mean) != len(std) or not len(mean):
            raise ValueError(
                f'MultiChannelDataPreprocessor: model.data_preprocessor.mean has {len(mean)} '
                f'values but std has {len(std)}; set both to one value per image channel')
        swap = to_rgb or kwargs.get('bgr_to_rgb', False) or kwargs.get('rgb_to_bgr', False)
        if swap and len(mean) != 3:
            raise ValueError(
                'a channel swap needs 3-channel images: model.data_preprocessor.to_rgb=True '
                f'but mean/std have {len(mean)} values; set model.data_preprocessor.to_rgb=False')
        super().__init__(mean=None, std=None, to_rgb=to_rgb, **kwargs)
        self._enable_normalize = True
        self.register_buffer('mean', torch.tensor(mean, dtype=torch.float32).view(-1, 1, 1),
                             False)
        self.register_buffer('std', torch.tensor(std, dtype=torch.float32).view(-1, 1, 1),
                             False)

    def forward(self, data: dict, training: bool = False) -> dict:
        """Normalise a batch of C-channel images; refuse one with another channel count."""
        inputs = data['inputs']
        views = inputs if isinstance(inputs, (list, tuple)) else [inputs]
        channels = {int(view.shape[-3]) for view in views}  # (B, C, H, W) per view
        if self.mean.numel() > 1 and channels != {self.mean.numel()}:
            raise ValueError(
                f'the images have {sorted(channels)} channels but '
                f'model.data_preprocessor.mean/std have {self.mean.numel()} values; set them to '
                'one value per loaded channel, or check LoadImageFromFile.color_type / '
                'imdecode_backend')
        return super().forward(data, training)
