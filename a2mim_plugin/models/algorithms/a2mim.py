"""The A2MIM algorithm (Li et al., "Architecture-Agnostic Masked Image Modeling -- From ViT
back to CNN", ICML 2023, https://arxiv.org/abs/2205.13943)."""
from typing import Dict, List, Optional

import torch
from mmpretrain.models.selfsup import BaseSelfSupervisor
from mmpretrain.registry import MODELS
from mmpretrain.structures import DataSample

from ..mask_injection import MaskTokenInjection, find_mask_injection
from ..utils import fill_masked_with_mean, upsample_mask
from ..utils.compile_ready import python_scalar_attributes
from ..utils.config_checks import (check_batch_has_mask, check_channels_fit,
                                   check_decoder_fits_backbone, check_head_fits_decoder,
                                   check_input_channels, check_input_matches_img_size,
                                   image_channels)

FILL_MODES = ('mean', None)


@MODELS.register_module()
class A2MIM(BaseSelfSupervisor):
    """A2MIM: image-mean fill, mid-layer mask token, spatial + Fourier reconstruction loss.

    The mask comes from ``data_samples`` (``SimMIMMaskGenerator`` in the pipeline). On the
    device, after the data preprocessor, masked pixels of the normalised input take each image's
    own per-channel mean (RGB or any C channels, ``model.neck.out_channels``); the encoder gets
    the mask token at its injection point; the decoder predicts the unfilled normalised image;
    the head returns its weighted loss terms.

    The encoder is either a preset (``A2MIMViT``, ``A2MIMResNet``, ... with ``mask_layer``) or
    any stock MMPretrain backbone plus ``mask_token=dict(at=...)`` naming the module where the
    token goes (the paper's architecture-agnostic form). The decoder reads the backbone's last
    output: a map, or a patch-token sequence (MlpMixer, a raw ViT) folded onto the decoder's
    grid (:class:`LatentLayout`, decided at build time). The SimMIM baseline is this class with
    ``input_fill=None``, ``replace=True`` and an L1 head without Fourier term.

    Args:
        backbone: the encoder config: a preset, or a stock backbone with ``mask_token``.
        neck: the decoder config.
        head: the ``A2MIMHead`` config.
        input_fill: 'mean' (A2MIM) or None (leave masked pixels untouched, SimMIM).
        mask_token: for a stock backbone, where and how the token is injected:
            ``dict(at='stages.0', on='input', kind='learnable', replace=False, mask_init=0.,
            token_init='trunc_normal', input_size=None)`` (see :class:`MaskTokenInjection`;
            ``at`` is a module path inside the backbone, ``on`` its 'input' or 'output').
            ``mask_token`` and ``mask_gamma`` become parameters of the backbone itself.
        **kwargs: ``BaseSelfSupervisor`` arguments (``data_preprocessor``, ``init_cfg``, ...).
    """

    def __init__(self, backbone: dict, neck: dict, head: dict, input_fill: Optional[str] = 'mean',
                 mask_token: Optional[dict] = None, **kwargs) -> None:
        if input_fill not in FILL_MODES:
            raise ValueError(f'Unknown input_fill {input_fill!r}; choose one of {FILL_MODES}.')
        super().__init__(backbone=backbone, neck=neck, head=head, **kwargs)
        self.input_fill = input_fill
        preset = find_mask_injection(self.backbone)
        name = type(self.backbone).__name__
        if preset is not None and mask_token is not None:
            raise ValueError(
                f'model.backbone {name} already injects the mask token (mask_layer='
                f'{getattr(self.backbone, "mask_layer", "?")}); remove model.mask_token, or use '
                f'the stock backbone ({getattr(self.backbone, "plain_type", name)}) with it.')
        if preset is None and mask_token is None:
            children = [child for child, _ in self.backbone.named_children()]
            raise ValueError(
                f'model.backbone {name} has no mask-token injection: add '
                "model.mask_token=dict(at=<module path>, on='input' or 'output') naming where "
                f'the token goes (top-level modules of {name}: {children}), or use a preset '
                '(A2MIMResNet, A2MIMConvNeXt, A2MIMViT, A2MIMPlainViT).')
        # Images of C channels (3 for RGB): the decoder predicts them, the backbone takes them.
        self.image_channels = image_channels(self.neck, self.head)
        check_head_fits_decoder(self.head, self.neck)
        check_channels_fit(self.data_preprocessor, self.backbone, self.image_channels)
        self._owns_injection = preset is None
        self.mask_injection = preset or MaskTokenInjection(
            self.backbone, **mask_token, image_channels=self.image_channels)
        # Token-sequence outputs (MlpMixer, raw ViT) are folded into the decoder's map.
        self.latent_layout = check_decoder_fits_backbone(self.backbone, self.neck,
                                                         self.image_channels)
        # NumPy drop-path rates of stock ViTs -> Python floats: torch.compile traces one graph.
        python_scalar_attributes(self)

    def init_weights(self) -> None:
        """Initialise all parts; a token this model attached to a stock backbone is drawn
        afterwards, unless the backbone's ``init_cfg`` loads a checkpoint."""
        super().init_weights()
        if self._owns_injection:
            self.mask_injection.init_weights(self.backbone.init_cfg)

    def extract_feat(self, inputs: torch.Tensor) -> tuple:
        """Backbone features without masking (the plain backbone)."""
        return self.backbone(inputs)

    def masked_input(self, inputs: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """The network input: ``inputs`` with masked pixels filled per ``input_fill``.

        Args:
            inputs: (B, C, H, W) normalised images.
            mask: (B, h, w) mask, 1 = masked.
        """
        if self.input_fill is None:
            return inputs
        return fill_masked_with_mean(inputs, upsample_mask(mask, inputs.shape[-2:]))

    def reconstruct(self, inputs: torch.Tensor, mask: torch.Tensor) -> Dict[str, torch.Tensor]:
        """Run the masked forward pass.

        Args:
            inputs: (B, C, H, W) normalised images.
            mask: (B, h, w) mask, 1 = masked.

        Returns:
            ``input`` (B, C, H, W) the network input and ``pred`` (B, C, H, W) the
            reconstruction, both in normalised space.
        """
        x_in = self.masked_input(inputs, mask)  # (B, C, H, W)
        latent = self.mask_injection.run(self.backbone, x_in, mask)  # the last one is decoded
        latent_map = self.latent_layout.to_map(latent[-1], inputs.shape[-2:])  # (B, C, h, w)
        pred = self.neck(latent_map)  # (B, C, H, W)
        return dict(input=x_in, pred=pred)

    def loss(self, inputs: torch.Tensor, data_samples: List[DataSample],
             **kwargs) -> Dict[str, torch.Tensor]:
        """Loss terms of one batch.

        Args:
            inputs: (B, C, H, W) normalised images from the data preprocessor.
            data_samples: samples carrying a (h, w) ``mask``.

        Returns:
            The head's weighted terms (``loss_spatial``, ``loss_fourier``); they sum to the
            official total loss.
        """
        check_batch_has_mask(data_samples)
        check_input_channels(inputs.shape[1], self.image_channels)
        check_input_matches_img_size(self.backbone, inputs.shape[-2:])
        mask = torch.stack([sample.mask for sample in data_samples]).to(inputs.device)  # (B,h,w)
        pred = self.reconstruct(inputs, mask)['pred']
        return self.head.loss(pred, inputs, mask)
