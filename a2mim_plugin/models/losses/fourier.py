"""Focal frequency loss (Jiang et al., ICCV 2021) as used by A2MIM (Li et al., ICML 2023)."""
import torch
from mmengine.model import BaseModule
from mmpretrain.registry import MODELS


def fft2_fp32(images: torch.Tensor) -> torch.Tensor:
    """Orthonormal 2-D DFT over (H, W), always in float32.

    Half-precision cuFFT only takes power-of-two sizes (224 and 192 fail) and bf16 FFT does not
    exist, so autocast is switched off and the input upcast.
    """
    with torch.autocast(device_type=images.device.type, enabled=False):
        return torch.fft.fft2(images.float(), norm='ortho')


@MODELS.register_module()
class FocalFrequencyLoss(BaseModule):
    """Squared spectral distance re-weighted toward hard frequencies.

    With ``D = |F(pred) - F(target)|**2`` per channel and frequency, the detached weight is
    ``W = |F(pred) - F(target)| ** alpha``, optionally ``log(1 + W)`` and divided by its maximum,
    then clamped to [0, 1]; the loss is ``mean(W * D)``.

    Args:
        alpha: exponent of the spectrum weight. Defaults to 1.
        ave_spectrum: compare batch-averaged spectra. Because the DFT is linear, this is computed
            as one FFT of the batch-mean image instead of B FFTs (equal up to rounding).
            Defaults to True (as A2MIM).
        log_matrix: apply ``log1p`` to the weight. Defaults to True.
        batch_matrix: normalise the weight by its maximum over the whole batch rather than per
            sample and channel. Defaults to True.
        loss_weight: multiplier of the loss. Defaults to 1.
    """

    def __init__(self, alpha: float = 1.0, ave_spectrum: bool = True, log_matrix: bool = True,
                 batch_matrix: bool = True, loss_weight: float = 1.0) -> None:
        super().__init__()
        self.alpha = alpha
        self.ave_spectrum = ave_spectrum
        self.log_matrix = log_matrix
        self.batch_matrix = batch_matrix
        self.loss_weight = loss_weight

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Compute the loss.

        Args:
            pred: (B, C, H, W) prediction.
            target: (B, C, H, W) target.

        Returns:
            Scalar float32 loss.
        """
        if self.ave_spectrum:  # mean_b F(x_b) == F(mean_b x_b)
            pred = pred.mean(dim=0, keepdim=True)
            target = target.mean(dim=0, keepdim=True)
        diff = fft2_fp32(pred) - fft2_fp32(target)  # (B', C, H, W) complex64
        dist = diff.real.square() + diff.imag.square()  # (B', C, H, W)
        with torch.no_grad():
            weight = dist.sqrt().pow(self.alpha)
            if self.log_matrix:
                weight = torch.log1p(weight)
            if self.batch_matrix:
                weight = weight / weight.max()
            else:
                weight = weight / weight.amax(dim=(-2, -1), keepdim=True)
            weight = weight.nan_to_num(0.).clamp(0., 1.)
        return self.loss_weight * (weight * dist).mean()
