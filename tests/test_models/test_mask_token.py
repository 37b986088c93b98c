"""The mask-token operation: formulas, token modes and token initialisation.

``apply_mask_token`` is called directly, with the parameters and settings of a preset's
injection, on random features of both layouts: CNN maps (B, C, h, w) through a tiny
A2MIMResNet (mask_layer 3: 256 channels) and ViT tokens (B, L, C) through a tiny A2MIMViT
(64 channels).
"""
import pytest
import torch

from a2mim_model_helpers import FAMILIES, IMG, build_backbone, random_mask
from a2mim_plugin.models.mask_injection import apply_mask_token

LAYOUTS = ['maps', 'tokens']


def _make(layout, **kwargs):
    """Backbone, random features at its injection point, a mask and the mask as a multiplier."""
    gen = torch.Generator().manual_seed(3)
    if layout == 'maps':
        model = build_backbone('A2MIMResNet', mask_layer=3, **kwargs)
        feats = torch.randn(3, 256, 4, 4, generator=gen)
        mask = random_mask(3, 4)
        m = mask.unsqueeze(1).float()  # (B, 1, h, w)
    else:
        model = build_backbone('A2MIMViT', mask_layer=0, **kwargs)
        feats = torch.randn(3, 16, 64, generator=gen)
        mask = random_mask(3, 4)
        m = mask.flatten(1).unsqueeze(-1).float()  # (B, L, 1)
    return model, feats, mask, m


def _inject(model, feats, mask):
    """The operation as the model's injection applies it to patch features."""
    inj = model.mask_injection
    return apply_mask_token(feats, mask, inj.layout, inj.kind, model.mask_token,
                            model.mask_gamma, inj.replace)


def _channel_view(param, feats):
    """A per-channel parameter shaped to broadcast against ``feats``."""
    if feats.dim() == 4:
        return param.reshape(1, -1, 1, 1)
    return param.reshape(1, 1, -1)


@pytest.mark.parametrize('layout', LAYOUTS)
def test_replace_formula(layout):
    model, z, mask, m = _make(layout, replace=True)
    t = _channel_view(model.mask_token, z)
    out = _inject(model, z, mask)
    torch.testing.assert_close(out, (1 - m) * z + m * t, rtol=0, atol=0)
    assert model.mask_gamma is None  # replace never creates gamma, whatever mask_init
    model, *_ = _make(layout, replace=True, mask_init=1e-6)
    assert model.mask_gamma is None


@pytest.mark.parametrize('layout', LAYOUTS)
def test_additive_formula_without_gamma(layout):
    model, z, mask, m = _make(layout)
    assert model.mask_gamma is None
    t = _channel_view(model.mask_token, z)
    out = _inject(model, z, mask)
    torch.testing.assert_close(out, z + m * t, rtol=0, atol=0)
    assert torch.equal(out[(m == 0).expand_as(z)], z[(m == 0).expand_as(z)])


@pytest.mark.parametrize('layout', LAYOUTS)
def test_additive_formula_with_gamma(layout):
    """z' = (1 - m) z + m * gamma * z + m * t, gamma per channel (spec section 2)."""
    model, z, mask, m = _make(layout, mask_init=1e-6)
    assert torch.all(model.mask_gamma == 1e-6)
    with torch.no_grad():  # per-channel values, so a mixed-up axis would show
        model.mask_gamma.copy_(torch.linspace(-2., 3., model.mask_gamma.numel()).reshape(
            model.mask_gamma.shape))
    t = _channel_view(model.mask_token, z)
    g = _channel_view(model.mask_gamma, z)
    out = _inject(model, z, mask)
    torch.testing.assert_close(out, (1 - m) * z + m * g * z + m * t, rtol=1e-6, atol=1e-6)
    keep = (m == 0).expand_as(z)
    assert torch.equal(out[keep], z[keep])
    # at gamma = 1e-6 the masked features are almost wiped: the token ~ replaces them
    model, z, mask, m = _make(layout, mask_init=1e-6)
    out = _inject(model, z, mask)
    t = _channel_view(model.mask_token, z)
    torch.testing.assert_close(out, (1 - m) * z + m * t, rtol=0, atol=1e-5)


@pytest.mark.parametrize('layout', LAYOUTS)
def test_mode_zero_is_a_frozen_zero_buffer(layout):
    model, z, mask, m = _make(layout, mask_token='zero')
    assert 'mask_token' in dict(model.named_buffers())
    assert 'mask_token' not in dict(model.named_parameters())
    assert not model.mask_token.requires_grad and torch.all(model.mask_token == 0)
    assert torch.equal(_inject(model, z, mask), z)  # additive zero: identity
    model, z, mask, m = _make(layout, mask_token='zero', replace=True)
    torch.testing.assert_close(_inject(model, z, mask), (1 - m) * z, rtol=0, atol=0)


@pytest.mark.parametrize('layout', LAYOUTS)
def test_mode_randn_is_fixed(layout):
    model, z, mask, m = _make(layout, mask_token='randn', replace=True)
    assert 'mask_token' in dict(model.named_buffers())
    assert 'mask_token' not in dict(model.named_parameters())
    token = model.mask_token.clone()
    assert not token.requires_grad
    assert 0.01 < token.std().item() < 0.03 and token.abs().max() > 0  # N(0, 0.02) after init
    out1 = _inject(model, z, mask)
    out2 = _inject(model, z, mask)
    assert torch.equal(out1, out2) and torch.equal(model.mask_token, token)
    torch.testing.assert_close(out1, (1 - m) * z + m * _channel_view(token, z), rtol=0, atol=0)


@pytest.mark.parametrize('layout', LAYOUTS)
def test_mode_mean_uses_the_detached_batch_mean(layout):
    model, z, mask, m = _make(layout, mask_token='mean', replace=True)
    assert model.mask_token is None and model.mask_gamma is None
    z = z.clone().requires_grad_()
    out = _inject(model, z, mask)
    dims = (0, 2, 3) if z.dim() == 4 else (0, 1)
    batch_mean = z.detach().mean(dims, keepdim=True)
    torch.testing.assert_close(out, (1 - m) * z + m * batch_mean, rtol=0, atol=0)
    out.sum().backward()
    # the token is a constant: masked positions pass no gradient, unmasked ones pass 1
    torch.testing.assert_close(z.grad, (1 - m).expand_as(z), rtol=0, atol=0)
    # additive: z + m * mean(z)
    model, *_ = _make(layout, mask_token='mean')
    torch.testing.assert_close(
        _inject(model, z.detach(), mask), z.detach() + m * batch_mean, rtol=0, atol=0)


@pytest.mark.parametrize('layout', LAYOUTS)
def test_mode_instance_mean_uses_each_samples_mean(layout):
    model, z, mask, m = _make(layout, mask_token='instance_mean', replace=True)
    assert model.mask_token is None
    z = z.clone().requires_grad_()
    out = _inject(model, z, mask)
    dims = (2, 3) if z.dim() == 4 else (1, )
    own_mean = z.detach().mean(dims, keepdim=True)  # (B, C, 1, 1) / (B, 1, C)
    torch.testing.assert_close(out.detach(), (1 - m) * z.detach() + m * own_mean,
                               rtol=0, atol=1e-7)
    assert not torch.allclose(own_mean[0], own_mean[1])  # really per sample
    out.sum().backward()
    # the mean is not detached: each position also receives (#masked of its sample) / (h*w)
    n_masked = m.sum(dim=dims, keepdim=True)
    expected = (1 - m) + n_masked / (16.)
    torch.testing.assert_close(z.grad, expected.expand_as(z), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize('family', list(FAMILIES))
def test_mode_none_is_identity(family):
    model = build_backbone(family, mask_token=None, mask_init=1e-6)
    model.eval()
    assert model.mask_token is None and model.mask_gamma is None
    assert 'mask_token' not in model.state_dict()
    stride = FAMILIES[family]['layers'][model.mask_layer][0]  # the family's default layer
    x = torch.randn(2, 3, IMG, IMG)
    mask = random_mask(2, IMG // stride)
    z = torch.randn(2, 8, 4, 4) if family in ('A2MIMResNet', 'A2MIMConvNeXt') else \
        torch.randn(2, 16, 8)
    assert _inject(model, z, random_mask(2, 4)) is z
    with torch.no_grad():
        assert torch.equal(model(x, mask)[-1], model(x)[-1])


@pytest.mark.parametrize('family', list(FAMILIES))
def test_gamma_exists_only_for_additive_learnable_tokens(family):
    assert build_backbone(family, mask_init=1e-6).mask_gamma is not None
    assert build_backbone(family, mask_init=0.).mask_gamma is None
    assert build_backbone(family, mask_init=1e-6, replace=True).mask_gamma is None
    assert build_backbone(family, mask_init=1e-6, mask_token=None).mask_gamma is None
    gamma = build_backbone(family, mask_init=1e-6).mask_gamma
    assert isinstance(gamma, torch.nn.Parameter) and gamma.requires_grad


# ------------------------------------------------------------------------------------------
# token initialisation
# ------------------------------------------------------------------------------------------
@pytest.mark.parametrize('family', ['A2MIMViT', 'A2MIMPlainViT', 'A2MIMResNet'])
def test_default_token_init_is_trunc_normal(family):
    model = build_backbone(family, init=False)
    assert model.mask_injection.token_init == 'trunc_normal'
    model.init_weights()
    token = model.mask_token.detach()
    assert isinstance(model.mask_token, torch.nn.Parameter)
    assert (token != 0).all()
    assert 0.01 < token.std().item() < 0.03  # std 0.02 over 64 / 256 channels


def test_convnext_default_token_is_zero_like_the_official_code():
    """The official ``trunc_normal_init`` on an nn.Parameter is a no-op: the token stays 0."""
    model = build_backbone('A2MIMConvNeXt', init=False)
    assert model.mask_injection.token_init == 'zeros'
    model.init_weights()
    assert isinstance(model.mask_token, torch.nn.Parameter)
    assert torch.all(model.mask_token == 0)
    fixed = build_backbone('A2MIMConvNeXt', token_init='trunc_normal')
    assert (fixed.mask_token != 0).all()
    assert 0.01 < fixed.mask_token.detach().std().item() < 0.03  # 320 channels


def test_resnet_zeros_token_init_option():
    """The paper-era ResNet runs had a zero token (inverted init condition before 9dd178f)."""
    model = build_backbone('A2MIMResNet', token_init='zeros')
    assert torch.all(model.mask_token == 0)


@pytest.mark.parametrize('family', list(FAMILIES))
def test_unknown_token_init_and_mode_name_the_choices(family):
    with pytest.raises(ValueError, match=r"Unknown token_init 'uniform'.*'trunc_normal'"):
        build_backbone(family, init=False, token_init='uniform')
    with pytest.raises(ValueError, match=r"Unknown mask_token mode 'learned'.*'learnable'"):
        build_backbone(family, init=False, mask_token='learned')
    with pytest.raises(ValueError, match=r'mask_init must be >= 0'):
        build_backbone(family, init=False, mask_init=-1.)
