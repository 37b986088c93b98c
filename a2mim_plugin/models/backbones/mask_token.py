"""Mid-layer mask-token injection shared by the A2MIM backbones.

A2MIM (Li et al., "Architecture-Agnostic Masked Image Modeling", ICML 2023, Sec. 3.2) adds a
learnable mask token to the features of the masked positions at one point of the encoder. The
operation on a feature map ``z`` with mask ``m`` (1 = masked) and token ``t`` is::

    replace=True:   z' = (1 - m) * z + m * t                       # SimMIM
    replace=False:  z  = (1 - m) * z + m * gamma * z   (if mask_init > 0)
                    z' = z + m * t                                  # A2MIM "residual" token
"""
from typing import Optional, Sequence

import torch
from mmengine.model.weight_init import trunc_normal_
from torch import nn

TOKEN_MODES = ('learnable', 'zero', 'randn', 'mean', 'instance_mean')
TOKEN_INITS = ('trunc_normal', 'zeros')


class MaskTokenMixin:
    """Adds ``mask_token`` / ``mask_gamma`` and the injection to a backbone.

    The host backbone calls :meth:`_init_mask_token` in ``__init__`` and
    :meth:`_inject_mask_token` at its injection point. Features are either maps (B, C, h, w)
    (``channels_first=True``) or tokens (B, L, C) with L = h * w.
    """

    def _init_mask_token(self, channels: int, mask_token: Optional[str], replace: bool,
                         mask_init: float, token_init: str, channels_first: bool) -> None:
        if mask_token is not None and mask_token not in TOKEN_MODES:
            raise ValueError(f'Unknown mask_token mode {mask_token!r}; choose one of '
                             f'{TOKEN_MODES} or None.')
        if token_init not in TOKEN_INITS:
            raise ValueError(f'Unknown token_init {token_init!r}; choose one of {TOKEN_INITS}.')
        if mask_init < 0:
            raise ValueError(f'mask_init must be >= 0 (0 disables mask_gamma), got {mask_init}.')
        self.mask_token_mode = mask_token
        self.replace = replace
        self.token_init = token_init
        self._channels_first = channels_first
        shape = (1, channels, 1, 1) if channels_first else (1, 1, channels)
        if mask_token == 'learnable':
            self.mask_token = nn.Parameter(torch.zeros(shape))
        elif mask_token == 'zero':
            self.register_buffer('mask_token', torch.zeros(shape))
        elif mask_token == 'randn':  # fixed; drawn in _init_mask_token_weights
            self.register_buffer('mask_token', torch.zeros(shape))
        else:  # None or computed from the features on every forward pass
            self.mask_token = None
        if mask_init > 0 and not replace and mask_token is not None:
            gamma_shape = shape if channels_first else (channels, )
            self.mask_gamma = nn.Parameter(torch.full(gamma_shape, float(mask_init)))
        else:
            self.mask_gamma = None

    def _init_mask_token_weights(self) -> None:
        """Initialise the token: ``token_init`` for a learnable one, N(0, 0.02) for 'randn'."""
        if self.mask_token_mode == 'randn':
            trunc_normal_(self.mask_token, mean=0., std=.02)
        elif self.mask_token_mode == 'learnable':
            if self.token_init == 'trunc_normal':
                trunc_normal_(self.mask_token, mean=0., std=.02)
            else:
                nn.init.zeros_(self.mask_token)

    def _check_mask_grid(self, mask: torch.Tensor, feat_hw: Sequence[int], input_hw: Sequence[int],
                         where: str) -> None:
        """Raise a clear error unless ``mask`` is (B, h, w) on the feature grid ``feat_hw``."""
        if mask.dim() != 3:
            raise ValueError(f'{type(self).__name__} expects a (B, h, w) mask, got shape '
                             f'{tuple(mask.shape)}.')
        if tuple(mask.shape[-2:]) != tuple(feat_hw):
            stride = input_hw[0] // feat_hw[0]
            raise ValueError(
                f'{type(self).__name__}: the {mask.shape[-2]}x{mask.shape[-1]} mask does not match '
                f'the {feat_hw[0]}x{feat_hw[1]} feature grid {where} (stride {stride} for a '
                f'{input_hw[0]}x{input_hw[1]} input). Set model_patch_size={stride} in '
                'SimMIMMaskGenerator, or choose the mask_layer whose stride equals your '
                'model_patch_size.')

    def _inject_mask_token(self, feats: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Apply the mask token to ``feats`` at the masked positions.

        Args:
            feats: (B, C, h, w) maps or (B, h*w, C) tokens.
            mask: (B, h, w), 1 = masked.

        Returns:
            Features of the same shape.
        """
        if self.mask_token_mode is None:
            return feats
        if self._channels_first:
            m = mask.unsqueeze(1).to(feats.dtype)  # (B, 1, h, w)
            spatial_dims = (2, 3)
        else:
            m = mask.flatten(1).unsqueeze(-1).to(feats.dtype)  # (B, L, 1)
            spatial_dims = (1, )
        if self.mask_token_mode == 'mean':  # batch-mean feature, as a constant
            token = feats.detach().mean(dim=(0, *spatial_dims), keepdim=True)
        elif self.mask_token_mode == 'instance_mean':  # each sample's own mean feature
            token = feats.mean(dim=spatial_dims, keepdim=True)
        else:
            token = self.mask_token.to(feats.dtype)
        if self.replace:
            return feats * (1. - m) + token * m
        if self.mask_gamma is not None:
            feats = feats * (1. - m) + feats * self.mask_gamma.to(feats.dtype) * m
        return feats + token * m
