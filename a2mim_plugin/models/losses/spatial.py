"""Element-wise regression losses used by the A2MIM head (Li et al., ICML 2023, Sec. 3.3).

Both return the per-element loss; the head owns the masking and the reduction. Complex inputs
(Fourier coefficients) are handled through the modulus of the difference, as the official
non-focal frequency loss does.
"""
import torch
from mmengine.model import BaseModule
from mmpretrain.registry import MODELS


@MODELS.register_module()
class ElementwiseL1Loss(BaseModule):
    """``|pred - target|`` per element (the spatial loss of the official ViT rows)."""

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return (pred - target).abs()


@MODELS.register_module()
class FocalL1Loss(BaseModule):
    """The official "focal L1": ``|d| * (2 * sigmoid(alpha * |d|) - 1) ** gamma``.

    Since ``2 * sigmoid(z) - 1 = tanh(z / 2)`` this is ``|d| * tanh(alpha * |d| / 2) ** gamma``:
    about ``alpha / 2 * d**2`` for small errors and ``|d|`` for large ones. The CNN rows use
    alpha 0.2 and gamma 1.

    Args:
        alpha: sharpness of the modulating factor. Defaults to 0.2.
        gamma: exponent of the modulating factor. Defaults to 1.
    """

    def __init__(self, alpha: float = 0.2, gamma: float = 1.0) -> None:
        super().__init__()
        if alpha <= 0:
            raise ValueError(f'FocalL1Loss: alpha must be > 0, got {alpha}.')
        self.alpha = alpha
        self.gamma = gamma

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        abs_diff = (pred - target).abs()
        return abs_diff * torch.tanh(0.5 * self.alpha * abs_diff).pow(self.gamma)
