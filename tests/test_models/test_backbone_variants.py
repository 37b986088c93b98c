"""Masked forward of the preset backbones in their non-default forms (issue 15).

Each preset is compared with a direct reference: the stock MMPretrain parent, built with the
same arguments and loaded with the preset's weights, with the A2MIM token (Li et al., ICML 2023,
Sec. 3.2) applied by hand at the injection point in a forward hook. The formula is written out
here, independently of the plugin::

    replace:   z' = (1 - m) z + m t
    additive:  z' = (1 - m) z + m gamma z + m t

Covered: ResNet deep stem / average-pool shortcut / non-64 stem, ConvNeXt with
``gap_before_final_norm=True``, ViTs with several ``out_indices``, every ``out_type`` and
``with_cls_token=False``. An all-zero mask must give the plain parent's output bit for bit.
"""
from typing import List, Optional

import pytest
import torch
from mmpretrain.registry import MODELS

from a2mim_model_helpers import IMG, VIT_ARCH, random_mask

VIT_COMMON = dict(arch=VIT_ARCH, img_size=IMG, patch_size=16, final_norm=True)
PARENT_DEFAULTS = {
    'A2MIMResNet': dict(type='ResNet', depth=18),
    'A2MIMConvNeXt': dict(type='ConvNeXt', arch='atto'),
    'A2MIMViT': dict(type='BEiTViT', use_abs_pos_emb=True, use_rel_pos_bias=True,
                     layer_scale_init_value=0.1, **VIT_COMMON),
    'A2MIMPlainViT': dict(type='VisionTransformer', **VIT_COMMON),
}
# Stride of each mask_layer's point at 64 px (grid = 64 / stride).
STRIDES = {'A2MIMResNet': (4, 4, 8, 16), 'A2MIMConvNeXt': (4, 8, 16, 32),
           'A2MIMViT': (16, ) * 4, 'A2MIMPlainViT': (16, ) * 4}

# (family, mask_layer, parent kwargs shared by preset and reference)
CNN_VARIANTS = [
    ('A2MIMResNet', 0, dict(deep_stem=True)),
    ('A2MIMResNet', 3, dict(deep_stem=True, out_indices=(0, 1, 2, 3))),
    ('A2MIMResNet', 2, dict(avg_down=True)),
    ('A2MIMResNet', 0, dict(deep_stem=True, avg_down=True, stem_channels=32,
                            out_indices=(0, 3))),
    ('A2MIMResNet', 1, dict(stem_channels=48)),
    ('A2MIMConvNeXt', 3, dict(gap_before_final_norm=True)),
    ('A2MIMConvNeXt', 0, dict(gap_before_final_norm=True, out_indices=(0, 1, 2, 3))),
]
VIT_VARIANTS = [
    (0, dict(out_indices=(0, 2, 3), out_type='featmap')),
    (2, dict(out_indices=(1, 3), out_type='featmap')),
    (1, dict(out_type='raw')),
    (0, dict(out_type='cls_token')),
    (3, dict(out_type='cls_token', out_indices=(2, 3))),
    (0, dict(out_type='avg_featmap')),
    (2, dict(out_type='avg_featmap')),
    (0, dict(with_cls_token=False, out_type='featmap')),
    (2, dict(with_cls_token=False, out_type='raw')),
    (1, dict(with_cls_token=False, out_type='avg_featmap', out_indices=(0, 3))),
]


def _vit_variant(family: str, kwargs: dict) -> dict:
    """Stock BEiTViT's per-layer relative position bias assumes a cls token (its attention
    fails on a sequence without one), so A2MIMViT without cls token uses none."""
    if family == 'A2MIMViT' and kwargs.get('with_cls_token') is False:
        return dict(kwargs, use_rel_pos_bias=False)
    return kwargs


VARIANTS = CNN_VARIANTS + [(family, k, _vit_variant(family, kw))
                           for family in ('A2MIMViT', 'A2MIMPlainViT')
                           for k, kw in VIT_VARIANTS]


def _id(variant) -> str:
    family, k, kwargs = variant
    return f'{family}-l{k}-' + '-'.join(f'{key}={value}' for key, value in kwargs.items())


def reference_token(feats: torch.Tensor, m: torch.Tensor, token: torch.Tensor,
                    gamma: Optional[torch.Tensor], replace: bool) -> torch.Tensor:
    """The token formula of the module docstring (``m`` broadcastable against ``feats``)."""
    if replace:
        return feats * (1. - m) + token * m
    if gamma is not None:
        feats = feats * (1. - m) + feats * gamma * m
    return feats + token * m


def hook_reference(parent: torch.nn.Module, family: str, mask_layer: int, mask: torch.Tensor,
                   token: torch.Tensor, gamma: Optional[torch.Tensor], replace: bool) -> list:
    """Apply the token at ``mask_layer`` of the stock ``parent`` by hand; return the handles."""
    calls: List[int] = []

    def on_map(z):  # (B, C, h, w)
        calls.append(1)
        m = mask.unsqueeze(1).float()
        return reference_token(z, m, token.reshape(1, -1, 1, 1),
                               None if gamma is None else gamma.reshape(1, -1, 1, 1), replace)

    def on_tokens(z, extra):  # (B, extra + h * w, C): patch tokens only
        calls.append(1)
        m = mask.flatten(1).unsqueeze(-1).float()
        patches = reference_token(z[:, extra:], m, token.reshape(1, 1, -1),
                                  None if gamma is None else gamma.reshape(-1), replace)
        return torch.cat([z[:, :extra], patches], dim=1) if extra else patches

    if family == 'A2MIMResNet':
        module = getattr(parent, parent.res_layers[mask_layer])
        handle = module.register_forward_pre_hook(lambda _m, args: (on_map(args[0]), ))
    elif family == 'A2MIMConvNeXt':
        module = parent.downsample_layers[mask_layer]
        handle = module.register_forward_hook(lambda _m, _a, out: on_map(out))
    elif mask_layer == 0:  # PatchEmbed returns (tokens, hw_shape); no cls token yet
        handle = parent.patch_embed.register_forward_hook(
            lambda _m, _a, out: (on_tokens(out[0], 0), out[1]))
    else:
        extra = parent.num_extra_tokens
        handle = parent.layers[mask_layer - 1].register_forward_pre_hook(
            lambda _m, args: (on_tokens(args[0], extra), *args[1:]))
    return [handle, calls]


def build_pair(family: str, mask_layer: int, kwargs: dict, replace: bool):
    """The preset with a non-trivial token (and gamma), and its stock parent with its weights."""
    preset = MODELS.build(dict(PARENT_DEFAULTS[family], type=family, mask_layer=mask_layer,
                               replace=replace, mask_init=0. if replace else 1e-6, **kwargs))
    preset.init_weights()
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():
        preset.mask_token.copy_(torch.randn(preset.mask_token.shape, generator=gen))
        if preset.mask_gamma is not None:
            preset.mask_gamma.copy_(torch.rand(preset.mask_gamma.shape, generator=gen))
    parent = MODELS.build(dict(PARENT_DEFAULTS[family], **kwargs))
    state = {k: v for k, v in preset.state_dict().items() if k not in ('mask_token', 'mask_gamma')}
    parent.load_state_dict(state, strict=True)
    preset.eval()
    parent.eval()
    return preset, parent


def _assert_outputs_equal(ours, theirs) -> None:
    assert isinstance(ours, tuple) and len(ours) == len(theirs)
    for a, b in zip(ours, theirs):
        assert a.shape == b.shape
        assert torch.equal(a, b)


@pytest.mark.parametrize('replace', [False, True], ids=['additive', 'replace'])
@pytest.mark.parametrize('variant', VARIANTS, ids=_id)
def test_masked_forward_equals_hand_applied_token(variant, replace):
    family, mask_layer, kwargs = variant
    preset, parent = build_pair(family, mask_layer, kwargs, replace)
    grid = IMG // STRIDES[family][mask_layer]
    mask = random_mask(2, grid, seed=mask_layer)
    x = torch.randn(2, 3, IMG, IMG, generator=torch.Generator().manual_seed(2))
    token = preset.mask_token.detach()
    gamma = None if preset.mask_gamma is None else preset.mask_gamma.detach()
    with torch.no_grad():
        plain = parent(x)
        ours = preset(x, mask)
        handle, calls = hook_reference(parent, family, mask_layer, mask, token, gamma, replace)
        try:
            theirs = parent(x)
        finally:
            handle.remove()
    assert calls == [1]
    assert len(ours) == len(kwargs.get('out_indices', [-1]))
    _assert_outputs_equal(ours, theirs)
    # the token reached every output that is computed after the injection point
    assert all(torch.isfinite(o).all() for o in ours)
    assert not torch.equal(ours[-1], plain[-1])


@pytest.mark.parametrize('variant', VARIANTS, ids=_id)
def test_zero_mask_is_the_plain_parent(variant):
    family, mask_layer, kwargs = variant
    preset, parent = build_pair(family, mask_layer, kwargs, replace=False)
    grid = IMG // STRIDES[family][mask_layer]
    x = torch.randn(2, 3, IMG, IMG, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        theirs = parent(x)
        _assert_outputs_equal(preset(x, torch.zeros(2, grid, grid, dtype=torch.long)), theirs)
        _assert_outputs_equal(preset(x), theirs)


@pytest.mark.parametrize('variant', [v for v in VARIANTS if v[0] == 'A2MIMResNet'][:2] +
                         [v for v in VARIANTS if v[0] == 'A2MIMPlainViT'][-3:], ids=_id)
def test_masked_forward_gradients_reach_token_and_gamma(variant):
    """Train mode: finite, non-zero gradients on the token and gamma through every output."""
    family, mask_layer, kwargs = variant
    preset, _ = build_pair(family, mask_layer, kwargs, replace=False)
    preset.train()
    grid = IMG // STRIDES[family][mask_layer]
    outs = preset(torch.randn(2, 3, IMG, IMG), random_mask(2, grid))
    sum(o.float().pow(2).mean() for o in outs).backward()
    for param in (preset.mask_token, preset.mask_gamma):
        assert param.grad is not None
        assert torch.isfinite(param.grad).all() and param.grad.abs().sum() > 0
