"""A simple feature pyramid for plain (single-stride) ViT backbones in MMDetection.

A ViT returns all its feature maps at stride 16. MMDetection's FPN, RPN and RoI extractors
expect a multi-scale pyramid (strides 4, 8, 16, 32), so each of the four ViT outputs is
rescaled before the FPN:

* input 0 (an early block): x4 up, two stride-2 transposed convs with norm + GELU between;
* input 1: x2 up, one stride-2 transposed conv;
* input 2: unchanged;
* input 3 (the last block): x0.5, 2x2 max pooling.

This is the multi-level design of the BEiT / MAE dense-prediction code (MMSegmentation's
``Feature2Pyramid``), which fixes the official A2MIM Mask R-CNN config that fed four stride-16
maps to an FPN declaring strides 4-32.
"""
from typing import Dict, Optional, Sequence, Tuple

import torch
from mmcv.cnn import build_norm_layer
from mmengine.model import BaseModule
from torch import nn

from mmdet.registry import MODELS


@MODELS.register_module()
class SimpleFeaturePyramid(BaseModule):
    """Rescale same-stride feature maps to a stride pyramid, one scale per input.

    Args:
        embed_dims: channels of every input (and output) map.
        rescales: one factor per input; supported: 4 (two transposed convs), 2 (one
            transposed conv), 1 (identity), 0.5 (max pooling). Defaults to (4, 2, 1, 0.5):
            stride-16 inputs become strides 4, 8, 16, 32.
        norm_cfg: norm between the two transposed convs of the x4 branch.
        init_cfg: MMEngine init config.
    """

    def __init__(self, embed_dims: int, rescales: Sequence[float] = (4, 2, 1, 0.5),
                 norm_cfg: Dict = dict(type='SyncBN', requires_grad=True),
                 init_cfg: Optional[Dict] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        self.embed_dims = embed_dims
        self.rescales = tuple(rescales)
        branches = []
        for scale in self.rescales:
            if scale == 4:
                branch = nn.Sequential(
                    nn.ConvTranspose2d(embed_dims, embed_dims, kernel_size=2, stride=2),
                    build_norm_layer(norm_cfg, embed_dims)[1],
                    nn.GELU(),
                    nn.ConvTranspose2d(embed_dims, embed_dims, kernel_size=2, stride=2))
            elif scale == 2:
                branch = nn.ConvTranspose2d(embed_dims, embed_dims, kernel_size=2, stride=2)
            elif scale == 1:
                branch = nn.Identity()
            elif scale == 0.5:
                branch = nn.MaxPool2d(kernel_size=2, stride=2)
            else:
                raise ValueError(f'SimpleFeaturePyramid: unsupported rescale {scale}; use 4, '
                                 '2, 1 or 0.5.')
            branches.append(branch)
        self.branches = nn.ModuleList(branches)

    def forward(self, inputs: Sequence[torch.Tensor]) -> Tuple[torch.Tensor, ...]:
        """Rescale ``inputs[i]`` by ``rescales[i]``.

        Args:
            inputs: one (B, embed_dims, H, W) map per rescale factor.

        Returns:
            The rescaled maps, in input order (finest first for the default rescales).
        """
        if len(inputs) != len(self.branches):
            raise ValueError(f'SimpleFeaturePyramid: got {len(inputs)} feature maps for '
                             f'{len(self.branches)} rescales {self.rescales}; set the '
                             "backbone's out_indices to one index per rescale.")
        return tuple(branch(x) for branch, x in zip(self.branches, inputs))
