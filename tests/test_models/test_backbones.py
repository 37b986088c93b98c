"""Mask-aware backbones: every family x every valid ``mask_layer``, parent equivalence, ViT
injection semantics.

Tiny models at 64 px: ViT 64-d / 4 layers / patch 16 (4x4 tokens), ResNet-18 (grids 16, 16, 8, 4
at mask_layer 0..3), ConvNeXt-atto (grids 16, 8, 4, 2).
"""
import pytest
import torch
from mmpretrain.registry import MODELS

from a2mim_model_helpers import (FAMILIES, FAMILY_LAYERS, IMG, VIT_ARCH, build_backbone,
                                 capture_input, injection_module, random_mask)

VIT_FAMILIES = ('A2MIMViT', 'A2MIMPlainViT')


def _grid(family, mask_layer):
    return IMG // FAMILIES[family]['layers'][mask_layer][0]


def _split(feats, family, mask):
    """Features at the injection point as (masked, unmasked) element sets, plus the cls rows.

    ViT features are (B, 1 + L, C) block inputs (cls first); CNN features are (B, C, h, w).
    """
    if family in VIT_FAMILIES:
        cls, patches = feats[:, :1], feats[:, 1:]
        m = mask.flatten(1).bool()  # (B, L)
        return patches[m], patches[~m], cls
    m = mask.bool()  # (B, h, w)
    per_pos = feats.permute(0, 2, 3, 1)  # (B, h, w, C)
    return per_pos[m], per_pos[~m], None


class _InjectionSpy:
    """Wraps the injection's ``_inject`` and keeps a copy of each output's patch features
    (leading cls tokens dropped)."""

    def __init__(self, model):
        self.outputs = []
        injection = model.mask_injection
        orig = injection._inject
        extra = injection.layout.extra_tokens

        def spy(feats, hw):
            out = orig(feats, hw)
            self.outputs.append(out[:, extra:].detach().clone())
            return out

        injection._inject = spy


@pytest.mark.parametrize('family,mask_layer', FAMILY_LAYERS)
def test_masked_forward_shapes_finite_and_gradients(family, mask_layer):
    stride, channels = FAMILIES[family]['layers'][mask_layer]
    model = build_backbone(family, mask_layer=mask_layer, mask_init=1e-6)
    model.train()
    assert tuple(model.mask_token.shape) in {(1, channels, 1, 1), (1, 1, channels)}
    assert model.mask_gamma.numel() == channels
    assert torch.all(model.mask_gamma == 1e-6)

    x = torch.randn(2, 3, IMG, IMG)
    mask = random_mask(2, IMG // stride)
    outs = model(x, mask)
    assert isinstance(outs, tuple) and len(outs) == 1
    out = outs[-1]
    assert out.shape == (2, *FAMILIES[family]['out_shape'])
    assert torch.isfinite(out).all()

    # a random projection: a plain sum would be blind behind ConvNeXt's final LayerNorm
    weight = torch.randn(out.shape, generator=torch.Generator().manual_seed(1))
    (out * weight).sum().backward()
    for name in ('mask_token', 'mask_gamma'):
        grad = getattr(model, name).grad
        assert grad is not None, f'no gradient reached {name}'
        assert torch.isfinite(grad).all()
        assert grad.abs().sum() > 0, f'zero gradient at {name}'
    for name, param in model.named_parameters():
        if param.grad is not None:
            assert torch.isfinite(param.grad).all(), name


@pytest.mark.parametrize('replace', [False, True], ids=['add_gamma', 'replace'])
@pytest.mark.parametrize('family,mask_layer', FAMILY_LAYERS)
def test_token_change_only_touches_masked_positions(family, mask_layer, replace):
    """Changing the token changes exactly the masked features at the injection point."""
    kwargs = dict(mask_layer=mask_layer, replace=replace)
    if not replace:
        kwargs['mask_init'] = 1e-6
    model = build_backbone(family, **kwargs)
    model.eval()
    x = torch.randn(2, 3, IMG, IMG)
    mask = random_mask(2, _grid(family, mask_layer))
    module = injection_module(model, family, mask_layer)
    spy = _InjectionSpy(model)

    with torch.no_grad():
        _, plain = capture_input(module, lambda: model(x))
        _, first = capture_input(module, lambda: model(x, mask))
        model.mask_token.add_(1.0)
        _, second = capture_input(module, lambda: model(x, mask))
    inj_first, inj_second = spy.outputs

    # the injection output itself (before cls / pos for ViT mask_layer 0)
    if family in VIT_FAMILIES:
        m = mask.flatten(1).bool()  # (B, L); injected tokens are (B, L, C)
        inj_masked = (inj_first[m], inj_second[m])
        inj_unmasked = (inj_first[~m], inj_second[~m])
        if mask_layer >= 1:  # the block input is [cls, injection output]
            assert torch.equal(first[:, 1:], inj_first)
    else:
        m = mask.bool()
        inj_masked = (inj_first.permute(0, 2, 3, 1)[m], inj_second.permute(0, 2, 3, 1)[m])
        inj_unmasked = (inj_first.permute(0, 2, 3, 1)[~m], inj_second.permute(0, 2, 3, 1)[~m])
        assert torch.equal(first, inj_first)  # the hook sits right after the injection
    assert torch.equal(*inj_unmasked)
    assert (inj_masked[0] != inj_masked[1]).all()

    # the input of the next module (cls included for ViTs)
    masked_1, unmasked_1, cls_1 = _split(first, family, mask)
    masked_2, unmasked_2, cls_2 = _split(second, family, mask)
    _, unmasked_plain, cls_plain = _split(plain, family, mask)
    assert torch.equal(unmasked_1, unmasked_2), 'token change leaked into unmasked positions'
    assert torch.equal(unmasked_1, unmasked_plain), 'unmasked features differ from mask=None'
    assert (masked_1 != masked_2).all(), 'token change did not reach every masked feature'
    if cls_1 is not None:
        assert torch.equal(cls_1, cls_2) and torch.equal(cls_1, cls_plain), 'cls token touched'


@pytest.mark.parametrize('family,mask_layer', FAMILY_LAYERS)
def test_all_zero_mask_is_bit_identical_to_no_mask(family, mask_layer):
    """End to end: with nothing masked the masked code path equals the plain forward."""
    model = build_backbone(family, mask_layer=mask_layer, mask_init=1e-6)
    model.eval()
    x = torch.randn(2, 3, IMG, IMG)
    zeros = torch.zeros(2, _grid(family, mask_layer), _grid(family, mask_layer), dtype=torch.long)
    with torch.no_grad():
        plain, masked = model(x), model(x, zeros)
        full = model(x, 1 - zeros)
    assert all(torch.equal(a, b) for a, b in zip(plain, masked))
    assert not torch.equal(plain[-1], full[-1])


@pytest.mark.parametrize('family', VIT_FAMILIES)
def test_vit_end_to_end_last_mask_layer(family):
    """The deepest valid mask_layer (num_layers - 1, before block index num_layers - 2):
    every earlier block output is untouched, the token reaches the final output."""
    k = VIT_ARCH['num_layers'] - 1  # official assert: 0 <= mask_layer < num_layers
    model = build_backbone(family, mask_layer=k)
    model.eval()
    x = torch.randn(2, 3, IMG, IMG)
    mask = random_mask(2, 4)
    seen = []
    handle = model.layers[k - 2].register_forward_hook(lambda _m, _a, out: seen.append(out))
    with torch.no_grad():
        plain_out, masked_out = model(x)[0], model(x, mask)[0]
        model.mask_token.add_(1.0)
        moved_out = model(x, mask)[0]
    handle.remove()
    assert torch.equal(seen[0], seen[1]) and torch.equal(seen[1], seen[2])
    assert not torch.equal(plain_out, masked_out)
    assert not torch.equal(masked_out, moved_out)
    assert torch.isfinite(moved_out).all()


# ------------------------------------------------------------------------------------------
# mask=None is exactly the parent backbone
# ------------------------------------------------------------------------------------------
PARENTS = {
    'A2MIMViT': dict(type='BEiTViT', arch=VIT_ARCH, img_size=IMG, patch_size=16,
                     use_abs_pos_emb=True, use_rel_pos_bias=True, layer_scale_init_value=0.1,
                     final_norm=True, out_type='featmap'),
    'A2MIMPlainViT': dict(type='VisionTransformer', arch=VIT_ARCH, img_size=IMG, patch_size=16,
                          final_norm=True, out_type='featmap'),
    'A2MIMResNet': dict(type='ResNet', depth=18),
    'A2MIMConvNeXt': dict(type='ConvNeXt', arch='atto', gap_before_final_norm=False),
}

TOKEN_VARIANTS = [
    (dict(), ['mask_token']),
    (dict(mask_init=1e-6), ['mask_gamma', 'mask_token']),
    (dict(mask_token='zero'), ['mask_token']),  # a buffer, still in the state dict
    (dict(mask_token='randn'), ['mask_token']),
    (dict(mask_token='mean'), []),
    (dict(mask_token=None), []),
]


@pytest.mark.parametrize('variant,extra_keys', TOKEN_VARIANTS,
                         ids=['learnable', 'gamma', 'zero', 'randn', 'mean', 'none'])
@pytest.mark.parametrize('family', list(FAMILIES))
def test_mask_none_is_exactly_the_parent(family, variant, extra_keys):
    model = build_backbone(family, **variant)
    model.eval()
    parent = MODELS.build(PARENTS[family])
    parent.eval()
    result = parent.load_state_dict(model.state_dict(), strict=False)
    assert result.missing_keys == []
    assert sorted(result.unexpected_keys) == extra_keys
    x = torch.randn(2, 3, IMG, IMG)
    with torch.no_grad():
        ours, theirs = model(x), parent(x)
        ours_kw = model(x, mask=None)
    assert len(ours) == len(theirs)
    for a, b, c in zip(ours, theirs, ours_kw):
        assert a.shape == b.shape
        assert torch.equal(a, b)
        assert torch.equal(c, b)


def test_a2mim_vit_defaults_are_the_official_pretraining_vit():
    model = build_backbone('A2MIMViT')
    assert model.pos_embed is not None and model.pos_embed.shape == (1, 1 + 16, 64)
    assert model.rel_pos_bias is None  # not shared: one table per layer
    for layer in model.layers:
        assert layer.attn.relative_position_bias_table is not None
        assert torch.allclose(layer.gamma_1, torch.full((64, ), 0.1))
    assert model.final_norm and model.out_type == 'featmap'
    assert model.mask_layer == 0 and not model.mask_injection.replace and model.mask_gamma is None
    assert model.cls_token.abs().sum() > 0  # trunc_normal, as the official ViT


# ------------------------------------------------------------------------------------------
# ViT injection semantics
# ------------------------------------------------------------------------------------------
@pytest.mark.parametrize('family', VIT_FAMILIES)
def test_vit_layer0_acts_before_cls_and_pos(family):
    """mask_layer=0, replace, all masked: the tokens entering the pos-add are the mask token."""
    model = build_backbone(family, mask_layer=0, replace=True)
    model.eval()
    x = torch.randn(2, 3, IMG, IMG)
    ones = torch.ones(2, 4, 4, dtype=torch.long)
    token = model.mask_token.detach().reshape(1, 1, -1)
    with torch.no_grad():
        _, after_pos = capture_input(model.drop_after_pos, lambda: model(x, ones))
        pos = model.pos_embed.detach()
        # tokens entering the pos-add = after_pos - pos (one rounding step)
        torch.testing.assert_close(after_pos[:, 1:] - pos[:, 1:], token.expand(2, 16, -1),
                                   rtol=0, atol=1e-6)
        torch.testing.assert_close(after_pos[:, :1] - pos[:, :1], model.cls_token.expand(2, 1, -1),
                                   rtol=0, atol=1e-6)
        # and exactly with a zero position embedding
        model.pos_embed.zero_()
        _, after_pos = capture_input(model.drop_after_pos, lambda: model(x, ones))
    assert torch.equal(after_pos[:, 1:], token.expand(2, 16, -1))
    assert torch.equal(after_pos[:, :1], model.cls_token.detach().expand(2, 1, -1))


@pytest.mark.parametrize('family', VIT_FAMILIES)
def test_vit_layer1_acts_after_pos_and_keeps_cls(family):
    """mask_layer=1, replace, all masked: block 0 sees cls+pos untouched and the bare token."""
    model = build_backbone(family, mask_layer=1, replace=True)
    model.eval()
    x = torch.randn(2, 3, IMG, IMG)
    ones = torch.ones(2, 4, 4, dtype=torch.long)
    with torch.no_grad():
        _, plain = capture_input(model.layers[0], lambda: model(x))
        _, masked = capture_input(model.layers[0], lambda: model(x, ones))
    token = model.mask_token.detach().reshape(1, 1, -1).expand(2, 16, -1)
    assert torch.equal(masked[:, 1:], token)  # no position embedding added after the token
    assert torch.equal(masked[:, :1], plain[:, :1])


@pytest.mark.parametrize('mask_layer', [1, 2, 3])
@pytest.mark.parametrize('family', VIT_FAMILIES)
def test_vit_additive_token_after_block(family, mask_layer):
    """mask_layer=k>=1 adds the token to the output of block k-1 on masked patch tokens only."""
    model = build_backbone(family, mask_layer=mask_layer)
    model.eval()
    x = torch.randn(2, 3, IMG, IMG)
    mask = random_mask(2, 4, seed=mask_layer)
    module = model.layers[mask_layer - 1]
    with torch.no_grad():
        _, plain = capture_input(module, lambda: model(x))
        _, masked = capture_input(module, lambda: model(x, mask))
    m = mask.flatten(1).unsqueeze(-1).float()
    expected = torch.cat([plain[:, :1], plain[:, 1:] + model.mask_token.detach() * m], dim=1)
    assert torch.equal(masked, expected)


@pytest.mark.parametrize('family', VIT_FAMILIES)
def test_vit_additive_layer0_token_then_pos(family):
    """mask_layer=0 (official ViT rows): masked token = PatchEmbed(x) + t + pos."""
    model = build_backbone(family, mask_layer=0)
    model.eval()
    x = torch.randn(2, 3, IMG, IMG)
    mask = random_mask(2, 4)
    with torch.no_grad():
        _, plain = capture_input(model.layers[0], lambda: model(x))
        _, masked = capture_input(model.layers[0], lambda: model(x, mask))
    m = mask.flatten(1).unsqueeze(-1).float()
    expected = plain.clone()
    expected[:, 1:] += model.mask_token.detach() * m
    torch.testing.assert_close(masked, expected, rtol=0, atol=1e-6)
    assert torch.equal(masked[:, :1], plain[:, :1])
