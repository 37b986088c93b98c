"""The A2MIM mask-token operation and its parameters (Li et al., ICML 2023, Sec. 3.2).

On features ``z`` with mask ``m`` (1 = masked) and token ``t``::

    replace=True:   z' = (1 - m) * z + m * t                       # SimMIM
    replace=False:  z  = (1 - m) * z + m * gamma * z   (if mask_init > 0)
                    z' = z + m * t                                  # A2MIM "residual" token

``mask_token`` and ``mask_gamma`` are registered on the backbone module itself, so a backbone
checkpoint is the stock backbone's plus exactly these two keys.
"""
from typing import Optional

import torch
from mmengine.model.weight_init import trunc_normal_
from torch import nn

from .layout import FeatureLayout

TOKEN_MODES = ('learnable', 'zero', 'randn', 'mean', 'instance_mean')
TOKEN_INITS = ('trunc_normal', 'zeros')
MASK_PARAM_NAMES = ('mask_token', 'mask_gamma')


def check_token_args(mask_token: Optional[str], mask_init: float, token_init: str) -> None:
    """Raise a ValueError naming the argument for an unknown mode, init or a negative gamma."""
    if mask_token is not None and mask_token not in TOKEN_MODES:
        raise ValueError(f'Unknown mask_token mode {mask_token!r}; choose one of '
                         f'{TOKEN_MODES} or None.')
    if token_init not in TOKEN_INITS:
        raise ValueError(f'Unknown token_init {token_init!r}; choose one of {TOKEN_INITS}.')
    if mask_init < 0:
        raise ValueError(f'mask_init must be >= 0 (0 disables mask_gamma), got {mask_init}; '
                         'set it to 0 or a small positive value (1e-6 in the official CNN '
                         'rows).')


def register_mask_params(owner: nn.Module, channels: int, layout: FeatureLayout,
                         mask_token: Optional[str], replace: bool, mask_init: float) -> None:
    """Create ``owner.mask_token`` and ``owner.mask_gamma`` in their natural shapes.

    'learnable' is a parameter; 'zero' and 'randn' are fixed buffers; 'mean', 'instance_mean'
    and None store nothing (``mask_token`` is then None). ``mask_gamma`` exists only for an
    additive token with ``mask_init > 0``.
    """
    for name in MASK_PARAM_NAMES:
        if hasattr(owner, name):
            raise ValueError(
                f'{type(owner).__name__} already has a {name!r}: it is a mask-aware backbone of '
                'its own. Use the plain backbone type (e.g. SwinTransformer instead of '
                'SimMIMSwinTransformer) with model.mask_token.')
    shape = layout.token_shape(channels)
    if mask_token == 'learnable':
        owner.mask_token = nn.Parameter(torch.zeros(shape))
    elif mask_token in ('zero', 'randn'):  # fixed; 'randn' is drawn in init_mask_token
        owner.register_buffer('mask_token', torch.zeros(shape))
    else:  # None, or computed from the features on every forward pass
        owner.mask_token = None
    if mask_init > 0 and not replace and mask_token is not None:
        owner.mask_gamma = nn.Parameter(torch.full(layout.gamma_shape(channels),
                                                   float(mask_init)))
    else:
        owner.mask_gamma = None


def init_mask_token(owner: nn.Module, mask_token: Optional[str], token_init: str) -> None:
    """``token_init`` for a learnable token, a fixed N(0, 0.02) draw for 'randn'."""
    if mask_token == 'randn' or (mask_token == 'learnable' and token_init == 'trunc_normal'):
        trunc_normal_(owner.mask_token, mean=0., std=.02)
    elif mask_token == 'learnable':
        nn.init.zeros_(owner.mask_token)


def apply_mask_token(feats: torch.Tensor, mask: torch.Tensor, layout: FeatureLayout,
                     mask_token: Optional[str], token: Optional[torch.Tensor],
                     gamma: Optional[torch.Tensor], replace: bool) -> torch.Tensor:
    """The masked features.

    Args:
        feats: patch features in ``layout`` (extra tokens already split off).
        mask: (B, h, w), 1 = masked.
        layout: the layout of ``feats``.
        mask_token: the token mode (see ``TOKEN_MODES``); None returns ``feats``.
        token: the stored token for 'learnable' / 'zero' / 'randn'.
        gamma: ``mask_gamma`` or None.
        replace: substitute (SimMIM) instead of add (A2MIM).

    Returns:
        Features of the shape of ``feats``.
    """
    if mask_token is None:
        return feats
    m = layout.cell_weights(mask, feats.dtype)
    channels = feats.shape[layout.channel_dim]
    if mask_token == 'mean':  # batch-mean feature, as a constant
        token = feats.detach().mean(dim=(0, *layout.spatial_dims), keepdim=True)
    elif mask_token == 'instance_mean':  # each sample's own mean feature
        token = feats.mean(dim=layout.spatial_dims, keepdim=True)
    else:
        token = token.to(feats.dtype).reshape(layout.token_shape(channels))
    if replace:
        return feats * (1. - m) + token * m
    if gamma is not None:
        gamma = gamma.to(feats.dtype).reshape(layout.gamma_shape(channels))
        feats = feats * (1. - m) + feats * gamma * m
    return feats + token * m
