"""The A2MIM algorithm (Li et al., "Architecture-Agnostic Masked Image Modeling -- From ViT
back to CNN", ICML 2023, https://arxiv.org/abs/2205.13943)."""
from typing import Dict, List, Optional

import torch
from mmpretrain.models.selfsup import BaseSelfSupervisor
from mmpretrain.registry import MODELS
from mmpretrain.structures import DataSample

from ..utils import fill_masked_with_mean, upsample_mask

FILL_MODES = ('mean', None)


@MODELS.register_module()
class A2MIM(BaseSelfSupervisor):
    """A2MIM: RGB-mean fill, mid-layer mask token, spatial + Fourier reconstruction loss.

    The mask comes from ``data_samples`` (``SimMIMMaskGenerator`` in the pipeline). On the
    device, after the data preprocessor, masked pixels of the normalised input take each image's
    own per-channel mean; the mask-aware backbone adds its token at ``mask_layer``; the decoder
    predicts the unfilled normalised image; the head returns its weighted loss terms.

    The SimMIM baseline is this class with ``input_fill=None``, a backbone with
    ``replace=True`` and an L1 head without Fourier term.

    Args:
        backbone: a mask-aware backbone config (``A2MIMViT``, ``A2MIMResNet``, ...).
        neck: the decoder config.
        head: the ``A2MIMHead`` config.
        input_fill: 'mean' (A2MIM) or None (leave masked pixels untouched, SimMIM).
        **kwargs: ``BaseSelfSupervisor`` arguments (``data_preprocessor``, ``init_cfg``, ...).
    """

    def __init__(self, backbone: dict, neck: dict, head: dict, input_fill: Optional[str] = 'mean',
                 **kwargs) -> None:
        if input_fill not in FILL_MODES:
            raise ValueError(f'Unknown input_fill {input_fill!r}; choose one of {FILL_MODES}.')
        super().__init__(backbone=backbone, neck=neck, head=head, **kwargs)
        self.input_fill = input_fill

    def extract_feat(self, inputs: torch.Tensor) -> tuple:
        """Backbone features without masking (the plain backbone)."""
        return self.backbone(inputs, mask=None)

    def masked_input(self, inputs: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """The network input: ``inputs`` with masked pixels filled per ``input_fill``.

        Args:
            inputs: (B, 3, H, W) normalised images.
            mask: (B, h, w) mask, 1 = masked.
        """
        if self.input_fill is None:
            return inputs
        return fill_masked_with_mean(inputs, upsample_mask(mask, inputs.shape[-2:]))

    def reconstruct(self, inputs: torch.Tensor, mask: torch.Tensor) -> Dict[str, torch.Tensor]:
        """Run the masked forward pass.

        Args:
            inputs: (B, 3, H, W) normalised images.
            mask: (B, h, w) mask, 1 = masked.

        Returns:
            ``input`` (B, 3, H, W) the network input and ``pred`` (B, 3, H, W) the
            reconstruction, both in normalised space.
        """
        x_in = self.masked_input(inputs, mask)  # (B, 3, H, W)
        latent = self.backbone(x_in, mask)  # tuple; the last map feeds the decoder
        pred = self.neck(latent[-1])  # (B, 3, H, W)
        return dict(input=x_in, pred=pred)

    def loss(self, inputs: torch.Tensor, data_samples: List[DataSample],
             **kwargs) -> Dict[str, torch.Tensor]:
        """Loss terms of one batch.

        Args:
            inputs: (B, 3, H, W) normalised images from the data preprocessor.
            data_samples: samples carrying a (h, w) ``mask``.

        Returns:
            The head's weighted terms (``loss_spatial``, ``loss_fourier``); they sum to the
            official total loss.
        """
        mask = torch.stack([sample.mask for sample in data_samples]).to(inputs.device)  # (B,h,w)
        pred = self.reconstruct(inputs, mask)['pred']
        return self.head.loss(pred, inputs, mask)
