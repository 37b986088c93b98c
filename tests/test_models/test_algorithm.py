"""The A2MIM algorithm end to end on tiny models: data preprocessor -> fill -> masked backbone ->
decoder -> head, against an independent reference of the official loss."""
import pytest
import torch
from mmpretrain.registry import MODELS
from mmpretrain.structures import DataSample

from a2mim_model_helpers import IMG, VIT_ARCH, pixel_mask, random_mask, reference_head_loss

MEAN = [123.675, 116.28, 103.53]
STD = [58.395, 57.12, 57.375]

# name -> (backbone, decoder in_channels, encoder stride, mask grid at 64 px, head kwargs)
SETUPS = {
    'vit_l0_ffl': (dict(type='A2MIMViT', arch=VIT_ARCH, img_size=IMG, mask_layer=0),
                   64, 16, 4,
                   dict(spatial='l1', fft_weight=0.1, fft_focal=True,
                        fft_unmask_replace='mixed')),
    'plainvit_l2_nonfocal': (dict(type='A2MIMPlainViT', arch=VIT_ARCH, img_size=IMG,
                                  mask_layer=2),
                             64, 16, 4,
                             dict(spatial='l1', fft_weight=0.2, fft_focal=False,
                                  fft_unmask_replace='prediction')),
    'r18_l3_ffl': (dict(type='A2MIMResNet', depth=18, mask_layer=3, mask_init=1e-6),
                   512, 32, 4,
                   dict(spatial='focal_l1', fft_weight=0.5, fft_focal=True,
                        fft_unmask_replace='mixed', fft_unmask_weight=1e-3)),
    'convnext_l3_nofft': (dict(type='A2MIMConvNeXt', arch='atto', mask_layer=3, mask_init=1e-6,
                               token_init='trunc_normal'),
                          320, 32, 2,
                          dict(spatial='focal_l1', fft_weight=0.)),
}


def _build(name, input_fill='mean'):
    backbone, in_channels, stride, _, head_kwargs = SETUPS[name]
    head_kwargs = dict(head_kwargs)
    spatial = head_kwargs.pop('spatial')
    loss = dict(type='ElementwiseL1Loss') if spatial == 'l1' else \
        dict(type='FocalL1Loss', alpha=0.2, gamma=1.0)
    model = MODELS.build(
        dict(type='A2MIM',
             backbone=backbone,
             neck=dict(type='A2MIMLinearDecoder', in_channels=in_channels,
                       encoder_stride=stride),
             head=dict(type='A2MIMHead', loss=loss, **head_kwargs),
             input_fill=input_fill,
             data_preprocessor=dict(type='SelfSupDataPreprocessor', mean=MEAN, std=STD,
                                    to_rgb=True)))
    model.init_weights()
    return model, dict(spatial=spatial, **head_kwargs)


def _batch(grid, batch=2, seed=0):
    """Raw BGR 0..255 images as the dataloader gives them, and samples carrying the mask."""
    gen = torch.Generator().manual_seed(seed)
    images = torch.randint(0, 256, (batch, 3, IMG, IMG), generator=gen).float()
    mask = random_mask(batch, grid, seed=seed)
    samples = [DataSample().set_mask(m) for m in mask]
    return dict(inputs=images, data_samples=samples), mask


def _normalise(images):
    rgb = images[:, [2, 1, 0]]
    return (rgb - torch.tensor(MEAN).view(1, 3, 1, 1)) / torch.tensor(STD).view(1, 3, 1, 1)


@pytest.mark.parametrize('name', list(SETUPS))
def test_loss_mode_equals_official_total(name):
    model, ref_kwargs = _build(name)
    model.train()
    data, mask = _batch(SETUPS[name][3])
    data = model.data_preprocessor(data, True)
    x = data['inputs']
    torch.testing.assert_close(x, _normalise(_batch(SETUPS[name][3])[0]['inputs']))

    seen = {}
    injection = model.mask_injection
    run = injection.run

    def spy(forward, x_in, mask):
        if mask is not None:  # the preset's own forward runs it again without a mask
            seen.update(x_in=x_in.detach().clone(), mask=mask)
        return run(forward, x_in, mask)

    injection.run = spy
    losses = model(**data, mode='loss')
    del injection.run
    expected_keys = {'loss_spatial', 'loss_fourier'} if ref_kwargs['fft_weight'] > 0 else \
        {'loss_spatial'}
    assert set(losses) == expected_keys
    total = sum(losses.values())
    assert total.dim() == 0 and torch.isfinite(total)

    # the backbone saw the mean-filled input and the stacked mask
    M = pixel_mask(mask, IMG).bool()
    filled = torch.where(M, x.mean((2, 3), keepdim=True), x)
    assert torch.equal(seen['mask'], mask)
    assert torch.equal(seen['x_in'], filled)

    # reference: the same network pieces, the official head formula, target = unfilled image
    with torch.no_grad():
        pred = model.neck(model.backbone(filled, mask)[-1])
        ref = reference_head_loss(pred, x, mask, **ref_kwargs)
    torch.testing.assert_close(total.detach().double(), ref, rtol=1e-5, atol=1e-8)
    if 'loss_fourier' in losses:
        ref_spatial = reference_head_loss(pred, x, mask, spatial=ref_kwargs['spatial'])
        torch.testing.assert_close(losses['loss_spatial'].detach().double(), ref_spatial,
                                   rtol=1e-5, atol=1e-8)

    total.backward()
    for pname, param in model.named_parameters():
        assert param.grad is not None, f'no gradient for {pname}'
        assert torch.isfinite(param.grad).all(), pname
    assert model.backbone.mask_token.grad.abs().sum() > 0
    if model.backbone.mask_gamma is not None:
        assert model.backbone.mask_gamma.grad.abs().sum() > 0


@pytest.mark.parametrize('name', ['vit_l0_ffl', 'r18_l3_ffl', 'convnext_l3_nofft'])
def test_tensor_mode_is_the_plain_backbone(name):
    model, _ = _build(name)
    model.eval()
    data, _ = _batch(SETUPS[name][3])
    x = model.data_preprocessor(data, False)['inputs']
    with torch.no_grad():
        feats = model(x, mode='tensor')
        plain = model.backbone(x, mask=None)
    assert len(feats) == len(plain)
    assert all(torch.equal(a, b) for a, b in zip(feats, plain))


def test_masked_input_fills_with_each_images_own_channel_mean():
    model, _ = _build('vit_l0_ffl')
    gen = torch.Generator().manual_seed(5)
    x = torch.randn(3, 3, IMG, IMG, generator=gen)
    x[:, :, :16, :16] += 10.  # make the whole-crop mean differ clearly from the visible mean
    mask = random_mask(3, 4, seed=5)
    mask[:, 0, 0] = 1
    original = x.clone()
    out = model.masked_input(x, mask)
    assert torch.equal(x, original)  # not filled in place
    M = pixel_mask(mask, IMG)[:, 0].bool()  # (B, H, W)
    for b in range(3):
        for c in range(3):
            whole = x[b, c].double().mean().float()
            visible = x[b, c][~M[b]].mean()
            assert torch.allclose(out[b, c][M[b]], whole.expand(int(M[b].sum())),
                                  rtol=0, atol=1e-6)
            assert not torch.allclose(whole, visible, atol=1e-2)
            assert torch.equal(out[b, c][~M[b]], x[b, c][~M[b]])
    assert not torch.equal(out, x)


def test_input_fill_none_leaves_the_input_untouched():
    model, _ = _build('vit_l0_ffl', input_fill=None)
    x = torch.randn(2, 3, IMG, IMG)
    mask = random_mask(2, 4)
    assert torch.equal(model.masked_input(x, mask), x)
    seen = {}
    handle = model.backbone.register_forward_pre_hook(
        lambda _m, args: seen.update(x_in=args[0]))
    model.loss(x, [DataSample().set_mask(m) for m in mask])
    handle.remove()
    assert torch.equal(seen['x_in'], x)


def test_simmim_configuration_runs():
    """The baseline of the comparison: no fill, replaced token, L1, no Fourier term."""
    model = MODELS.build(
        dict(type='A2MIM', input_fill=None,
             backbone=dict(type='A2MIMViT', arch=VIT_ARCH, img_size=IMG, replace=True),
             neck=dict(type='A2MIMLinearDecoder', in_channels=64, encoder_stride=16),
             head=dict(type='A2MIMHead', loss=dict(type='ElementwiseL1Loss'))))
    model.init_weights()
    x = torch.randn(2, 3, IMG, IMG)
    mask = random_mask(2, 4)
    losses = model.loss(x, [DataSample().set_mask(m) for m in mask])
    assert set(losses) == {'loss_spatial'}
    with torch.no_grad():
        pred = model.neck(model.backbone(x, mask)[-1])
    torch.testing.assert_close(losses['loss_spatial'].detach().double(),
                               reference_head_loss(pred, x, mask), rtol=1e-5, atol=0)


def test_unknown_input_fill_names_the_choices():
    with pytest.raises(ValueError, match=r"Unknown input_fill 'noise'.*'mean', None"):
        _build('vit_l0_ffl', input_fill='noise')
