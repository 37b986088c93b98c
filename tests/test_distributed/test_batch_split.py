"""What splitting a batch over processes does to the A2MIM loss (and so to DDP's gradient).

DDP averages the per-process gradients. Without the Fourier term the head's loss is a mean
over masked pixels, and with the same number of masked cells in every image the average of
the two half-batch losses is the whole-batch loss: 2 x batch 2 trains like 1 x batch 4. The
focal frequency loss averages the spectrum over each process's own batch and normalises by
its batch maximum, so there the two set-ups legitimately differ.
"""
import pytest
import torch

from a2mim_plugin.models.heads import A2MIMHead


def _batch(seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    pred = torch.randn(4, 3, 64, 64, generator=g, requires_grad=True)
    target = torch.randn(4, 3, 64, 64, generator=g)
    mask = torch.zeros(4, 16)
    for row in mask:  # 10 of 16 cells masked in every image (SimMIMMaskGenerator-like)
        row[torch.randperm(16, generator=g)[:10]] = 1
    return pred, target, mask.view(4, 4, 4)


def _whole_and_split(head: A2MIMHead):
    pred, target, mask = _batch()
    whole = sum(head.loss(pred, target, mask).values())
    (grad_whole, ) = torch.autograd.grad(whole, pred)
    halves = [sum(head.loss(pred[i:i + 2], target[i:i + 2], mask[i:i + 2]).values())
              for i in (0, 2)]
    split = (halves[0] + halves[1]) / 2  # what DDP's gradient average optimises
    (grad_split, ) = torch.autograd.grad(split, pred)
    return whole, split, grad_whole, grad_split


def test_spatial_loss_splits_exactly_over_processes():
    head = A2MIMHead(loss=dict(type='ElementwiseL1Loss'), fft_weight=0.)
    whole, split, grad_whole, grad_split = _whole_and_split(head)
    assert split.item() == pytest.approx(whole.item(), rel=1e-6)
    torch.testing.assert_close(grad_split, grad_whole, rtol=1e-5, atol=1e-12)


def test_fourier_term_depends_on_the_per_process_batch():
    head = A2MIMHead(loss=dict(type='ElementwiseL1Loss'), fft_weight=0.5, fft_focal=True,
                     fft_unmask_replace='mixed')
    whole, split, grad_whole, grad_split = _whole_and_split(head)
    assert abs(split.item() - whole.item()) > 1e-4 * abs(whole.item())
    assert not torch.allclose(grad_split, grad_whole, rtol=1e-3, atol=1e-9)
