"""Reconstruction head of A2MIM (Li et al., ICML 2023, Sec. 3.3): spatial + Fourier losses."""
from typing import Dict, Optional

import torch
from mmengine.model import BaseModule
from mmpretrain.registry import MODELS

from ..losses import fft2_fp32
from ..utils import upsample_mask

UNMASK_REPLACE_MODES = ('target', 'prediction', 'mean', 'mixed')


@MODELS.register_module()
class A2MIMHead(BaseModule):
    """Masked-pixel regression plus an optional Fourier-domain term, as the official head.

    ``loss_spatial = sum(l(pred - target) * M_s) / (C_in * (sum(M_s) + 1e-5))`` with
    ``M_s = M + (1 - M) * unmask_weight``: one global mean over the masked pixels and channels
    of the (per-GPU) batch. The Fourier term compares the spectra of the target and of a
    prediction whose visible region is replaced (``fft_unmask_replace``) and returns
    ``loss_fourier = fft_weight * L_freq``. The two keys sum to the official total loss.

    Args:
        loss: element-wise spatial loss, e.g. ``dict(type='ElementwiseL1Loss')`` (ViT rows) or
            ``dict(type='FocalL1Loss', alpha=0.2, gamma=1.0)`` (CNN rows).
        encoder_in_channels: channels the spatial loss is averaged over: the image channels
            (1 gray, 3 RGB, C multispectral). Defaults to 3.
        unmask_weight: weight of visible pixels in the spatial loss. Defaults to 0.
        fft_weight: weight of the Fourier term; 0 disables it. Defaults to 0.
        fft_focal: True uses ``fft_loss`` (the focal frequency loss with averaged spectrum,
            log matrix and batch-max normalisation); False applies ``loss`` to the complex
            spectra (through the modulus), as the official non-focal path. Defaults to False.
        fft_loss: config of the focal Fourier loss. Defaults to the official
            ``FocalFrequencyLoss(alpha=1, ave_spectrum=True, log_matrix=True,
            batch_matrix=True)``.
        fft_unmask_replace: what replaces the visible region of the prediction before the FFT:
            'target', 'prediction' (detached), 'mean' (per-image channel mean of the target) or
            'mixed' (0.5 * detached prediction + 0.5 * target). None becomes 'target' when the
            Fourier term is on, as in the official code.
        fft_unmask_weight: share of the live prediction kept in the visible region inside the
            Fourier term. Defaults to 0.
        fft_reweight: non-focal path only: ``mean(sg(l) * l)``. Defaults to False.
    """

    def __init__(self,
                 loss: dict = dict(type='ElementwiseL1Loss'),
                 encoder_in_channels: int = 3,
                 unmask_weight: float = 0.,
                 fft_weight: float = 0.,
                 fft_focal: bool = False,
                 fft_loss: Optional[dict] = None,
                 fft_unmask_replace: Optional[str] = None,
                 fft_unmask_weight: float = 0.,
                 fft_reweight: bool = False,
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(init_cfg)
        if fft_unmask_replace is not None and fft_unmask_replace not in UNMASK_REPLACE_MODES:
            raise ValueError(f'Unknown fft_unmask_replace {fft_unmask_replace!r}; choose one of '
                             f'{UNMASK_REPLACE_MODES} or None.')
        for name, value in (('unmask_weight', unmask_weight),
                            ('fft_unmask_weight', fft_unmask_weight)):
            if not 0. <= value <= 1.:
                raise ValueError(f'A2MIMHead: {name} must be in [0, 1], got {value}.')
        if fft_weight < 0:
            raise ValueError(f'A2MIMHead: fft_weight must be >= 0, got {fft_weight}.')
        if fft_reweight and fft_focal:
            raise ValueError('A2MIMHead: fft_reweight applies to the non-focal Fourier loss only;'
                             ' set fft_focal=False or fft_reweight=False.')
        if fft_loss is not None and not (fft_focal and fft_weight > 0):
            raise ValueError(
                'Fourier loss options contradict each other: model.head.fft_loss='
                f"{fft_loss.get('type')!r} but model.head.fft_focal={fft_focal}, "
                f'fft_weight={fft_weight} (fft_loss is used only by the focal Fourier term); '
                'set model.head.fft_focal=True and fft_weight > 0, or remove model.head.fft_loss')
        self.criterion = MODELS.build(loss)
        self.encoder_in_channels = encoder_in_channels
        self.unmask_weight = unmask_weight
        self.fft_weight = fft_weight
        self.fft_focal = fft_focal
        self.fft_unmask_weight = fft_unmask_weight
        self.fft_reweight = fft_reweight
        if fft_unmask_replace is None and fft_weight > 0 and unmask_weight < 1:
            fft_unmask_replace = 'target'
        self.fft_unmask_replace = fft_unmask_replace
        if fft_weight > 0 and fft_focal:
            self.fft_criterion = MODELS.build(fft_loss or dict(
                type='FocalFrequencyLoss', alpha=1.0, ave_spectrum=True, log_matrix=True,
                batch_matrix=True))
        else:
            self.fft_criterion = None

    def loss(self, pred: torch.Tensor, target: torch.Tensor,
             mask: torch.Tensor) -> Dict[str, torch.Tensor]:
        """Compute the weighted loss terms.

        Args:
            pred: (B, C, H, W) reconstruction.
            target: (B, C, H, W) normalised original image (not filled).
            mask: (B, h, w) mask, 1 = masked, with H / h = W / w an integer.

        Returns:
            ``loss_spatial`` and, when ``fft_weight > 0``, ``loss_fourier`` (already weighted).
        """
        if pred.shape != target.shape:
            key = f'model.neck.out_channels={target.shape[1]}' \
                if pred.shape[1] != target.shape[1] else \
                'model.neck.encoder_stride to the backbone output stride'
            raise ValueError(f'A2MIMHead: prediction {tuple(pred.shape)} and target '
                             f'{tuple(target.shape)} differ; set {key}.')
        pixel_mask = upsample_mask(mask, target.shape[-2:]).to(pred.dtype)  # (B, 1, H, W)

        mask_s = pixel_mask + (1. - pixel_mask) * self.unmask_weight
        loss_map = self.criterion(pred, target)  # (B, C, H, W)
        loss_spatial = (loss_map * mask_s).sum() / (mask_s.sum() + 1e-5) / \
            self.encoder_in_channels
        losses = dict(loss_spatial=loss_spatial)
        if self.fft_weight > 0:
            pred_f = self._replace_visible(pred, target, pixel_mask)
            losses['loss_fourier'] = self.fft_weight * self._fourier_loss(pred_f, target)
        return losses

    def _replace_visible(self, pred: torch.Tensor, target: torch.Tensor,
                         pixel_mask: torch.Tensor) -> torch.Tensor:
        """Prediction whose visible pixels are (mostly) replaced, for the Fourier term."""
        if self.fft_unmask_weight >= 1 or self.fft_unmask_replace is None:
            return pred
        replacement = {
            'target': lambda: target,
            'prediction': lambda: pred.detach(),
            'mean': lambda: target.mean(dim=(2, 3), keepdim=True).expand_as(target),
            'mixed': lambda: 0.5 * pred.detach() + 0.5 * target,
        }[self.fft_unmask_replace]()
        mask_f = pixel_mask + (1. - pixel_mask) * self.fft_unmask_weight
        # = pred * mask_f + replacement * (1 - mask_f), written so that pred == target gives
        # exactly the target (the official form rounds, e.g. p * 0.001 + p * 0.999 != p).
        return replacement + (pred - replacement) * mask_f

    def _fourier_loss(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if self.fft_focal:
            return self.fft_criterion(pred, target)
        # Non-focal path: the spatial loss on the complex spectra (modulus of the difference).
        loss_map = self.criterion(fft2_fp32(pred), fft2_fp32(target))
        if self.fft_reweight:
            return (loss_map.detach() * loss_map).mean()
        return loss_map.mean()
