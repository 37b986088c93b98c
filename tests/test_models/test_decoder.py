"""A2MIMLinearDecoder: a k x k conv to stride^2 * C channels, then a pixel shuffle (SimMIM's
decoder with the official ``NonLinearMIMNeck`` options of A2MIM, Li et al., ICML 2023)."""
import pytest
import torch
import torch.nn.functional as F
from mmpretrain.registry import MODELS


def _decoder(**kwargs):
    decoder = MODELS.build(dict(type='A2MIMLinearDecoder', **kwargs))
    decoder.init_weights()
    return decoder


def _reference(x: torch.Tensor, conv: torch.nn.Conv2d, stride: int, channels: int):
    """Independent forward: the conv, then output pixel (h*s + i, w*s + j) of channel c
    taken from conv channel c*s*s + i*s + j at cell (h, w)."""
    y = F.conv2d(x, conv.weight, conv.bias, padding=conv.weight.shape[-1] // 2)
    b, _, h, w = y.shape
    y = y.reshape(b, channels, stride, stride, h, w).permute(0, 1, 4, 2, 5, 3)
    return y.reshape(b, channels, h * stride, w * stride)


@pytest.mark.parametrize('kernel_size,out_channels', [(1, 3), (3, 3), (5, 1), (3, 4)])
def test_forward_is_conv_then_pixel_shuffle(kernel_size, out_channels):
    decoder = _decoder(in_channels=8, encoder_stride=4, kernel_size=kernel_size,
                       out_channels=out_channels)
    conv = decoder.decoder[0]
    assert conv.kernel_size == (kernel_size, kernel_size)
    assert conv.padding == (kernel_size // 2, kernel_size // 2)
    assert (conv.in_channels, conv.out_channels) == (8, 4 * 4 * out_channels)
    x = torch.randn(2, 8, 3, 5)
    out = decoder(x)
    assert out.shape == (2, out_channels, 12, 20)
    torch.testing.assert_close(out, _reference(x, conv, 4, out_channels), rtol=1e-5,
                               atol=1e-6)


def test_kernel_size_reaches_the_neighbouring_cells():
    """1x1: a change in one feature cell changes only its own stride x stride block;
    3x3: also the blocks of its 8 neighbours, and nothing further away."""
    x = torch.randn(1, 8, 5, 5)
    moved = x.clone()
    moved[:, :, 2, 2] += 1.
    for kernel_size, reach in ((1, 0), (3, 1)):
        decoder = _decoder(in_channels=8, encoder_stride=2, kernel_size=kernel_size)
        with torch.no_grad():
            diff = (decoder(moved) - decoder(x)).abs().amax(dim=1)[0]  # (10, 10)
        cells = diff.reshape(5, 2, 5, 2).amax(dim=(1, 3)) > 0  # changed feature cells
        expected = torch.zeros(5, 5, dtype=torch.bool)
        expected[2 - reach:3 + reach, 2 - reach:3 + reach] = True
        assert torch.equal(cells, expected), (kernel_size, cells)


@pytest.mark.parametrize('kernel_size,out_channels', [(3, 3), (1, 1)])
def test_official_init_applies_to_the_replaced_conv(kernel_size, out_channels):
    """TruncNormal(std 0.02) weights and zero bias, also for a non-default conv."""
    torch.manual_seed(0)
    conv = _decoder(in_channels=64, encoder_stride=8, kernel_size=kernel_size,
                    out_channels=out_channels).decoder[0]
    assert torch.count_nonzero(conv.bias) == 0
    assert conv.weight.std().item() == pytest.approx(0.02, rel=0.1)
    assert conv.weight.abs().max().item() <= 2.  # mmengine's truncation bounds (a=-2, b=2)


@pytest.mark.parametrize('kernel_size', [0, 2, 4, -1])
def test_even_or_non_positive_kernel_is_an_error(kernel_size):
    with pytest.raises(ValueError, match=rf'kernel_size must be odd, got {kernel_size}'):
        MODELS.build(dict(type='A2MIMLinearDecoder', in_channels=8, encoder_stride=4,
                          kernel_size=kernel_size))


def test_a2mim_trains_with_a_3x3_decoder():
    """The option through the algorithm: loss finite, and the 3x3 conv gets a finite,
    non-zero gradient on its off-centre taps (which a 1x1 conv does not have)."""
    model = MODELS.build(dict(
        type='A2MIM',
        data_preprocessor=dict(type='SelfSupDataPreprocessor', mean=[0., 0., 0.],
                               std=[1., 1., 1.]),
        backbone=dict(type='A2MIMResNet', depth=18, mask_layer=3, mask_init=1e-6),
        neck=dict(type='A2MIMLinearDecoder', in_channels=512, encoder_stride=32,
                  kernel_size=3),
        head=dict(type='A2MIMHead', loss=dict(type='FocalL1Loss'), fft_weight=0.5,
                  fft_focal=True, fft_unmask_replace='mixed', fft_unmask_weight=1e-3)))
    model.init_weights()
    from mmpretrain.structures import DataSample
    images = torch.rand(2, 3, 64, 64)
    samples = []
    for b in range(2):
        sample = DataSample()
        mask = torch.zeros(4, 4, dtype=torch.long)
        mask[b % 2::2, :] = 1
        sample.set_mask(mask)
        samples.append(sample)
    losses = model.loss(images, samples)
    total = sum(losses.values())
    assert torch.isfinite(total)
    total.backward()
    grad = model.neck.decoder[0].weight.grad
    off_centre = grad.clone()
    off_centre[..., 1, 1] = 0
    assert torch.isfinite(grad).all() and off_centre.abs().sum() > 0
