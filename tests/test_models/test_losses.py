"""Element-wise spatial losses and the focal frequency loss (FFL) of A2MIM."""
import pytest
import torch
from mmpretrain.registry import MODELS

from a2mim_model_helpers import random_mask


def _pair(shape=(4, 3, 32, 32), seed=0):
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(shape, generator=gen), torch.randn(shape, generator=gen)


def _reference_ffl(pred, target, alpha=1.0, ave_spectrum=True, log_matrix=True,
                   batch_matrix=True):
    """The focal frequency loss written plainly: B per-image FFTs (float64), then averaged."""
    fp = torch.fft.fft2(pred.double(), norm='ortho')  # (B, C, H, W), one FFT per image
    ft = torch.fft.fft2(target.double(), norm='ortho')
    if ave_spectrum:
        fp, ft = fp.mean(0, keepdim=True), ft.mean(0, keepdim=True)
    dist = (fp - ft).real**2 + (fp - ft).imag**2
    weight = dist.sqrt()**alpha
    if log_matrix:
        weight = torch.log1p(weight)
    if batch_matrix:
        weight = weight / weight.max()
    else:
        weight = weight / weight.amax(dim=(-2, -1), keepdim=True)
    weight = weight.nan_to_num(0.).clamp(0., 1.).detach()
    return (weight * dist).mean()


# ------------------------------------------------------------------------------------------
# spatial losses
# ------------------------------------------------------------------------------------------
def test_elementwise_l1_is_abs_difference():
    pred, target = _pair()
    loss = MODELS.build(dict(type='ElementwiseL1Loss'))(pred, target)
    assert loss.shape == pred.shape
    assert torch.equal(loss, (pred - target).abs())


@pytest.mark.parametrize('alpha,gamma', [(0.2, 1.0), (1.0, 1.0), (0.5, 2.0)])
def test_focal_l1_formula(alpha, gamma):
    pred, target = _pair()
    pred = pred * 5  # errors from ~0 to ~20: both the quadratic and the linear regime
    loss = MODELS.build(dict(type='FocalL1Loss', alpha=alpha, gamma=gamma))(pred, target)
    d = (pred - target).abs().double()
    assert loss.shape == pred.shape
    torch.testing.assert_close(loss.double(), d * torch.tanh(alpha * d / 2)**gamma,
                               rtol=1e-5, atol=1e-7)
    torch.testing.assert_close(loss.double(), d * (2 * torch.sigmoid(alpha * d) - 1)**gamma,
                               rtol=1e-5, atol=1e-7)


def test_focal_l1_regimes():
    """~ alpha/2 d^2 for small errors, ~ |d| for large ones (the CNN rows' alpha 0.2)."""
    crit = MODELS.build(dict(type='FocalL1Loss', alpha=0.2))
    small = torch.tensor([1e-3, -2e-3])
    torch.testing.assert_close(crit(small, torch.zeros(2)), 0.1 * small**2, rtol=1e-4, atol=0)
    large = torch.tensor([100., -80.])
    torch.testing.assert_close(crit(large, torch.zeros(2)), large.abs(), rtol=1e-6, atol=0)


def test_focal_l1_on_complex_uses_the_modulus():
    """The official non-focal Fourier path applies the spatial loss to complex spectra."""
    a = torch.randn(2, 3, 8, 8, dtype=torch.complex64)
    b = torch.randn(2, 3, 8, 8, dtype=torch.complex64)
    d = (a - b).abs()
    l1 = MODELS.build(dict(type='ElementwiseL1Loss'))(a, b)
    focal = MODELS.build(dict(type='FocalL1Loss', alpha=0.2))(a, b)
    assert l1.dtype == torch.float32 and focal.dtype == torch.float32
    torch.testing.assert_close(l1, d)
    torch.testing.assert_close(focal, d * torch.tanh(0.1 * d))


def test_focal_l1_rejects_non_positive_alpha():
    with pytest.raises(ValueError, match='alpha must be > 0'):
        MODELS.build(dict(type='FocalL1Loss', alpha=0.))


# ------------------------------------------------------------------------------------------
# focal frequency loss
# ------------------------------------------------------------------------------------------
@pytest.mark.parametrize('size', [32, 28])
def test_ffl_ave_spectrum_equals_per_image_ffts(size):
    """One FFT of the batch-mean image == the mean of B per-image spectra (DFT linearity)."""
    pred, target = _pair((8, 3, size, size), seed=size)
    ffl = MODELS.build(dict(type='FocalFrequencyLoss'))  # alpha 1, ave, log, batch max
    loss = ffl(pred, target)
    ref = _reference_ffl(pred, target)
    assert loss.dtype == torch.float32 and loss.dim() == 0
    assert abs(loss.item() - ref.item()) <= 1e-6 * abs(ref.item())
    # and the shortcut really is different from comparing un-averaged spectra
    assert abs(_reference_ffl(pred, target, ave_spectrum=False).item() - ref.item()) > 1e-3


@pytest.mark.parametrize('kwargs', [
    dict(ave_spectrum=False),
    dict(ave_spectrum=False, batch_matrix=False),
    dict(log_matrix=False),
    dict(alpha=2.0),
    dict(alpha=0.5, log_matrix=False, batch_matrix=False),
], ids=['no_ave', 'no_ave_no_batch', 'no_log', 'alpha2', 'alpha05_plain'])
def test_ffl_options_match_reference(kwargs):
    pred, target = _pair((4, 3, 16, 16), seed=7)
    loss = MODELS.build(dict(type='FocalFrequencyLoss', **kwargs))(pred, target)
    ref = _reference_ffl(pred, target, **kwargs)
    torch.testing.assert_close(loss.double(), ref, rtol=1e-5, atol=0)


def test_ffl_loss_weight_and_gradient():
    pred, target = _pair((4, 3, 16, 16), seed=1)
    pred.requires_grad_()
    loss = MODELS.build(dict(type='FocalFrequencyLoss', loss_weight=3.0))(pred, target)
    base = MODELS.build(dict(type='FocalFrequencyLoss'))(pred, target)
    torch.testing.assert_close(loss, 3 * base)
    loss.backward()
    assert torch.isfinite(pred.grad).all() and pred.grad.abs().sum() > 0
    # ave_spectrum: every image of the batch receives the same gradient (mean-image loss)
    torch.testing.assert_close(pred.grad[0], pred.grad[3])


def test_every_loss_is_exactly_zero_at_a_perfect_prediction():
    pred, _ = _pair((2, 3, 32, 32))
    target = pred.clone()
    assert MODELS.build(dict(type='ElementwiseL1Loss'))(pred, target).sum() == 0
    assert MODELS.build(dict(type='FocalL1Loss'))(pred, target).sum() == 0
    for kwargs in (dict(), dict(ave_spectrum=False), dict(batch_matrix=False)):
        loss = MODELS.build(dict(type='FocalFrequencyLoss', **kwargs))(pred, target)
        assert loss.item() == 0.0  # 0 / 0 in the weight is turned into 0, never NaN
    mask = random_mask(2, 4)
    for head_cfg in (
            dict(loss=dict(type='ElementwiseL1Loss'), fft_weight=0.1, fft_focal=True,
                 fft_unmask_replace='mixed'),
            dict(loss=dict(type='FocalL1Loss'), fft_weight=0.5, fft_focal=False,
                 fft_unmask_replace='mixed'),
            dict(loss=dict(type='FocalL1Loss'), fft_weight=0.5, fft_focal=False,
                 fft_reweight=True, unmask_weight=0.3, fft_unmask_replace='prediction')):
        losses = MODELS.build(dict(type='A2MIMHead', **head_cfg)).loss(pred, target, mask)
        assert set(losses) == {'loss_spatial', 'loss_fourier'}
        assert losses['loss_spatial'].item() == 0.0
        assert losses['loss_fourier'].item() == 0.0
        assert sum(losses.values()).item() == 0.0
    # Also with 0 < fft_unmask_weight < 1 (the official ResNet rows): the blend of prediction
    # and replacement on visible pixels is exact when they are equal.
    head = MODELS.build(dict(type='A2MIMHead', loss=dict(type='FocalL1Loss'), fft_weight=0.5,
                             fft_focal=True, fft_unmask_replace='mixed', fft_unmask_weight=1e-3))
    losses = head.loss(pred, target, mask)
    assert losses['loss_spatial'].item() == 0.0
    assert losses['loss_fourier'].item() == 0.0


# ------------------------------------------------------------------------------------------
# mixed precision: the Fourier terms run in float32 at non-power-of-two sizes
# ------------------------------------------------------------------------------------------
def _cpu_autocast_supports(dtype):
    try:
        with torch.autocast('cpu', dtype=dtype):
            out = torch.nn.functional.linear(torch.randn(2, 4), torch.randn(3, 4))
        return out.dtype == dtype
    except (RuntimeError, ValueError):
        return False


AMP_DTYPES = [
    torch.bfloat16,
    pytest.param(torch.float16, marks=pytest.mark.skipif(
        not _cpu_autocast_supports(torch.float16),
        reason='this torch build has no float16 CPU autocast')),
]


@pytest.mark.parametrize('size', [192, 224])
@pytest.mark.parametrize('dtype', AMP_DTYPES, ids=['bf16', 'fp16'])
def test_fourier_losses_are_float32_under_autocast(dtype, size):
    gen = torch.Generator().manual_seed(0)
    feats = torch.randn(2, 8, size // 16, size // 16, generator=gen)
    decoder = torch.nn.Sequential(torch.nn.Conv2d(8, 3 * 16 * 16, 1), torch.nn.PixelShuffle(16))
    target = torch.randn(2, 3, size, size, generator=gen)
    mask = random_mask(2, size // 32)
    ffl = MODELS.build(dict(type='FocalFrequencyLoss'))
    focal_head = MODELS.build(dict(type='A2MIMHead', loss=dict(type='ElementwiseL1Loss'),
                                   fft_weight=0.1, fft_focal=True, fft_unmask_replace='mixed'))
    plain_head = MODELS.build(dict(type='A2MIMHead', loss=dict(type='FocalL1Loss'),
                                   fft_weight=0.5, fft_focal=False, fft_unmask_replace='mixed',
                                   fft_unmask_weight=1e-3))
    with torch.autocast('cpu', dtype=dtype):
        pred = decoder(feats)
        assert pred.dtype == dtype  # a low-precision prediction, as in AMP training
        loss = ffl(pred, target)
        focal = focal_head.loss(pred, target, mask)['loss_fourier']
        plain = plain_head.loss(pred, target, mask)['loss_fourier']
    for value in (loss, focal, plain):
        assert value.dtype == torch.float32
        assert torch.isfinite(value)
    # same numbers as the float32 computation on the same (rounded) prediction
    ref = ffl(pred.float(), target)
    torch.testing.assert_close(loss, ref, rtol=1e-2, atol=0)
    (loss + focal + plain).backward()
    assert all(torch.isfinite(p.grad).all() for p in decoder.parameters())
