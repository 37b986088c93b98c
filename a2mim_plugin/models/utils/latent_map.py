"""The encoder's last output as the (B, C, h, w) map the linear decoder reads (Li et al., ICML
2023, Sec. 3.3: one linear layer predicts each patch's pixels from its latent).

Most MMPretrain backbones end in a feature map. A few end in a token sequence: ``MlpMixer``
returns (B, C, L); a ViT with ``out_type='raw'`` returns (B, n + L, C) with ``n`` leading class
/ distillation tokens. Which of the two a sequence is gets decided once, at build time, from the
output on an image of the backbone's own size, the decoder's stride (which fixes the grid
``L = h * w``) and the decoder's input channels -- never from a length alone. Maps pass through
untouched, so the numbers of map-output backbones are the same with or without this step.
"""
from dataclasses import dataclass
from typing import List, Optional, Sequence, Tuple

import torch

from ..mask_injection.layout import MAX_EXTRA_TOKENS


@dataclass(frozen=True)
class LatentLayout:
    """How the backbone's last output holds the decoder's (h, w) grid.

    Attributes:
        kind: 'NCHW' (a map), 'NCL' (channels first, patches last) or 'NLC' (token sequence).
        extra_tokens: leading non-patch tokens of an 'NLC' sequence (dropped).
        stride: input pixels per patch (the decoder's ``encoder_stride``) for sequences.
    """

    kind: str = 'NCHW'
    extra_tokens: int = 0
    stride: int = 1

    def to_map(self, feats: torch.Tensor, image_hw: Sequence[int]) -> torch.Tensor:
        """(B, C, h, w) from the backbone output ``feats`` of an image of ``image_hw``."""
        if self.kind == 'NCHW':
            return feats
        stride = self.stride
        h, w = int(image_hw[0]) // stride, int(image_hw[1]) // stride
        if feats.dim() == 3:
            length = feats.shape[2] if self.kind == 'NCL' else feats.shape[1] - self.extra_tokens
        if feats.dim() != 3 or length != h * w:
            raise ValueError(
                f'the backbone output {tuple(feats.shape)} ({self.kind}, {self.extra_tokens} '
                f'leading tokens) does not hold the {h}x{w} patch grid of a '
                f'{image_hw[0]}x{image_hw[1]} input at model.neck.encoder_stride={stride}; set '
                'model.backbone.img_size to the crop of the pipeline (token sequences are folded '
                'onto the grid of the size the backbone was built for).')
        if self.kind == 'NCL':
            return feats.unflatten(2, (h, w))  # (B, C, h, w)
        return feats[:, self.extra_tokens:].transpose(1, 2).unflatten(2, (h, w))


def sequence_candidates(shape: Tuple[int, int], grid_cells: int, stride: int = 1
                        ) -> List[Tuple[LatentLayout, int]]:
    """The layouts a per-image (d0, d1) output can have on a grid of ``grid_cells`` patches
    at ``stride``, each with the channel count it implies."""
    d0, d1 = shape
    found = []
    if d1 == grid_cells:
        found.append((LatentLayout('NCL', 0, stride), d0))
    if 0 <= d0 - grid_cells <= MAX_EXTRA_TOKENS:
        found.append((LatentLayout('NLC', d0 - grid_cells, stride), d1))
    return found


def find_sequence_layout(shape: Tuple[int, int], grid_cells: int, channels: int,
                         stride: int) -> Optional[LatentLayout]:
    """The one layout of a per-image (d0, d1) output with ``channels`` on the grid, or None.

    Raises:
        ValueError: when the shape reads both as (C, L) and as (L, C) with these channels.
    """
    fits = [layout for layout, c in sequence_candidates(shape, grid_cells, stride)
            if c == channels]
    if len(fits) > 1:
        raise ValueError(
            f'the backbone output {("B", *shape)} reads both as (B, C, L) and as (B, L, C) for '
            f'{channels} channels on {grid_cells} patches; change the crop (model.backbone.'
            'img_size and the pipeline) or the embedding width so that they differ')
    return fits[0] if fits else None
