"""A2MIMHead against an independent implementation of the official head (spec section 4.5)."""
import itertools

import pytest
import torch
from mmpretrain.registry import MODELS

from a2mim_model_helpers import pixel_mask, random_mask, reference_head_loss

MODES = ['target', 'prediction', 'mean', 'mixed']


def _data(size=32, grid=4, batch=3, seed=0):
    gen = torch.Generator().manual_seed(seed)
    target = torch.randn(batch, 3, size, size, generator=gen)
    pred = (target + 0.7 * torch.randn(batch, 3, size, size, generator=gen)).requires_grad_()
    return pred, target, random_mask(batch, grid, seed=seed)


def _head_and_reference(spatial, **kwargs):
    loss = dict(type='ElementwiseL1Loss') if spatial == 'l1' else \
        dict(type='FocalL1Loss', alpha=0.2, gamma=1.0)
    head = MODELS.build(dict(type='A2MIMHead', loss=loss, **kwargs))
    return head, lambda p, t, m: reference_head_loss(p, t, m, spatial=spatial, **kwargs)


def _compare(head, reference, pred, target, mask):
    losses = head.loss(pred, target, mask)
    total = sum(losses.values())
    ref = reference(pred, target, mask)
    torch.testing.assert_close(total.double(), ref, rtol=2e-6, atol=1e-9)
    (grad, ) = torch.autograd.grad(total, pred)
    (ref_grad, ) = torch.autograd.grad(ref, pred)
    torch.testing.assert_close(grad.double(), ref_grad.double(), rtol=1e-4, atol=1e-9)
    return losses


CASES = [
    dict(spatial=spatial, fft_unmask_replace=mode, fft_focal=focal,
         fft_unmask_weight=w_u, unmask_weight=w_s)
    for spatial, mode, focal, w_u, w_s in itertools.product(
        ['l1', 'focal_l1'], MODES, [True, False], [0., 1e-3], [0., 0.5])
]


@pytest.mark.parametrize('case', CASES, ids=lambda c: '-'.join(f'{v}' for v in c.values()))
def test_head_total_matches_official_formula(case):
    case = dict(case)
    spatial = case.pop('spatial')
    head, reference = _head_and_reference(spatial, fft_weight=0.3, **case)
    losses = _compare(head, reference, *_data())
    assert set(losses) == {'loss_spatial', 'loss_fourier'}
    # the spatial term alone is the official masked mean
    ref_spatial = reference_head_loss(*_data(), spatial=spatial,
                                      unmask_weight=case['unmask_weight'])
    torch.testing.assert_close(losses['loss_spatial'].double(), ref_spatial, rtol=2e-6, atol=0)


@pytest.mark.parametrize('spatial', ['l1', 'focal_l1'])
@pytest.mark.parametrize('mode', MODES)
def test_head_non_focal_reweight_matches(spatial, mode):
    head, reference = _head_and_reference(spatial, fft_weight=0.1, fft_focal=False,
                                          fft_reweight=True, fft_unmask_replace=mode,
                                          fft_unmask_weight=1e-3)
    _compare(head, reference, *_data(seed=2))


@pytest.mark.parametrize('row', ['vit', 'r50', 'r101', 'convnext'])
def test_official_rows(row):
    """The four head settings of the official ImageNet rows (spec section 5)."""
    kwargs = {
        'vit': dict(spatial='l1', fft_weight=0.1, fft_focal=True, fft_unmask_replace='mixed'),
        'r50': dict(spatial='focal_l1', fft_weight=0.5, fft_focal=True,
                    fft_unmask_replace='mixed', fft_unmask_weight=1e-3),
        'r101': dict(spatial='focal_l1', fft_weight=0.1, fft_focal=False,
                     fft_unmask_replace='mixed', fft_unmask_weight=1e-3),
        'convnext': dict(spatial='focal_l1', fft_weight=0.),
    }[row]
    spatial = kwargs.pop('spatial')
    head, reference = _head_and_reference(spatial, **kwargs)
    # 224 px images with a 14 x 14 (p16) or 7 x 7 (p32) mask
    losses = _compare(head, reference, *_data(size=224, grid=7 if row == 'convnext' else 14,
                                              batch=2))
    assert ('loss_fourier' in losses) == (row != 'convnext')


def test_unmask_replace_defaults_to_target():
    head = MODELS.build(dict(type='A2MIMHead', fft_weight=0.1))
    assert head.fft_unmask_replace == 'target'
    head = MODELS.build(dict(type='A2MIMHead', fft_weight=0.1, unmask_weight=1.0))
    assert head.fft_unmask_replace is None
    head = MODELS.build(dict(type='A2MIMHead'))
    assert head.fft_unmask_replace is None
    pred, target, mask = _data()
    assert set(head.loss(pred, target, mask)) == {'loss_spatial'}


def test_fourier_gradient_reaches_only_masked_pixels_without_unmask_weight():
    """With w_u = 0 the visible region of the FFT input is (partly) a constant."""
    head = MODELS.build(dict(type='A2MIMHead', fft_weight=1.0, fft_focal=True,
                             fft_unmask_replace='mixed'))
    pred, target, mask = _data()
    loss = head.loss(pred, target, mask)['loss_fourier']
    (grad, ) = torch.autograd.grad(loss, pred)
    visible = (pixel_mask(mask, 32) == 0).expand_as(grad)
    assert torch.all(grad[visible] == 0)
    assert grad[~visible].abs().sum() > 0
    head = MODELS.build(dict(type='A2MIMHead', fft_weight=1.0, fft_focal=True,
                             fft_unmask_replace='mixed', fft_unmask_weight=1e-3))
    (grad, ) = torch.autograd.grad(head.loss(pred, target, mask)['loss_fourier'], pred)
    assert torch.all(grad[visible] != 0)


def test_spatial_loss_is_one_global_mean_over_masked_pixels():
    head = MODELS.build(dict(type='A2MIMHead'))
    target = torch.zeros(2, 3, 8, 8)
    pred = torch.zeros(2, 3, 8, 8)
    mask = torch.zeros(2, 2, 2, dtype=torch.long)
    mask[0, 0, 0] = 1  # 16 masked pixels in image 0, none in image 1
    pred[0, :, :4, :4] = 2.0  # error 2 on every masked pixel and channel
    pred[1] = 100.0  # visible errors do not count
    loss = head.loss(pred, target, mask)['loss_spatial']
    torch.testing.assert_close(loss, torch.tensor(2.0 * 48 / (16 + 1e-5) / 3))


def test_non_integer_scale_names_the_fix():
    head = MODELS.build(dict(type='A2MIMHead'))
    pred, target, _ = _data(size=64)
    with pytest.raises(ValueError, match=r'5x5 mask.*64x64 image.*model_patch_size'):
        head.loss(pred, target, torch.ones(3, 5, 5, dtype=torch.long))


def test_prediction_target_shape_mismatch_names_the_fix():
    head = MODELS.build(dict(type='A2MIMHead'))
    with pytest.raises(ValueError, match='encoder_stride'):
        head.loss(torch.zeros(1, 3, 32, 32), torch.zeros(1, 3, 64, 64),
                  torch.ones(1, 4, 4, dtype=torch.long))


@pytest.mark.parametrize('kwargs,match', [
    (dict(fft_weight=0.1, fft_unmask_replace='zeros'),
     r"Unknown fft_unmask_replace 'zeros'.*'target', 'prediction', 'mean', 'mixed'"),
    (dict(unmask_weight=1.5), r'unmask_weight must be in \[0, 1\]'),
    (dict(fft_unmask_weight=-0.1), r'fft_unmask_weight must be in \[0, 1\]'),
    (dict(fft_weight=-1.), r'fft_weight must be >= 0'),
    (dict(fft_weight=0.1, fft_focal=True, fft_reweight=True),
     r'set fft_focal=False or fft_reweight=False'),
])
def test_invalid_head_configs(kwargs, match):
    with pytest.raises(ValueError, match=match):
        MODELS.build(dict(type='A2MIMHead', **kwargs))
