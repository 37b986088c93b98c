"""Mask-aware ConvNeXt for A2MIM (Li et al., ICML 2023)."""
from typing import Optional, Tuple

import torch
from mmpretrain.models.backbones import ConvNeXt
from mmpretrain.registry import MODELS

from .mask_token import MaskTokenMixin


@MODELS.register_module()
class A2MIMConvNeXt(MaskTokenMixin, ConvNeXt):
    """MMPretrain ``ConvNeXt`` that injects the A2MIM mask token after ``downsample_layers[k]``.

    ``mask_layer`` k acts after the k-th downsampling and before ``stages[k]``: stride 4, 8, 16
    and 32 for k = 0..3. The official rows use k = 3 (7x7 at 224 px, ``model_patch_size=32``).

    Args:
        mask_layer: stage index in [0, 3]. Defaults to 3.
        mask_token: 'learnable' (default), 'zero', 'randn', 'mean', 'instance_mean' or None.
        replace: True substitutes the token (SimMIM); False adds it (A2MIM, default).
        mask_init: initial ``mask_gamma`` (1e-6 in the official rows); 0 creates no gamma.
        token_init: 'zeros' (default) reproduces the official code, whose
            ``trunc_normal_init`` call on an ``nn.Parameter`` is a silent no-op that leaves the
            token at zero; 'trunc_normal' gives the intended N(0, 0.02) init.
        **kwargs: ``ConvNeXt`` arguments; ``gap_before_final_norm`` defaults to False here (the
            final norm on the feature map, as the official pre-training).
    """

    def __init__(self, mask_layer: int = 3, mask_token: Optional[str] = 'learnable',
                 replace: bool = False, mask_init: float = 0., token_init: str = 'zeros',
                 **kwargs) -> None:
        kwargs.setdefault('gap_before_final_norm', False)
        super().__init__(**kwargs)
        if not 0 <= mask_layer < len(self.stages):
            raise ValueError(f'A2MIMConvNeXt: mask_layer must be in [0, {len(self.stages) - 1}]'
                             f' (the downsampling after which the token is injected), got '
                             f'{mask_layer}.')
        self.mask_layer = mask_layer
        self._init_mask_token(self.channels[mask_layer], mask_token, replace, mask_init,
                              token_init, channels_first=True)

    def init_weights(self) -> None:
        super().init_weights()
        if not (isinstance(self.init_cfg, dict) and self.init_cfg.get('type') == 'Pretrained'):
            self._init_mask_token_weights()

    def forward(self, x: torch.Tensor,
                mask: Optional[torch.Tensor] = None) -> Tuple[torch.Tensor, ...]:
        """Encode images, injecting the mask token when ``mask`` is given.

        Args:
            x: (B, 3, H, W) images.
            mask: (B, h, w) mask on the grid after ``downsample_layers[mask_layer]``, or None
                for the plain ConvNeXt.

        Returns:
            The (normed) feature maps or pooled vectors of ``out_indices``.
        """
        if mask is None:
            return super().forward(x)
        input_hw = x.shape[-2:]
        outs = []
        for i, stage in enumerate(self.stages):
            x = self.downsample_layers[i](x)
            if i == self.mask_layer:
                self._check_mask_grid(mask, x.shape[-2:], input_hw,
                                      f'after downsample_layers[{i}] (mask_layer={i})')
                x = self._inject_mask_token(x, mask)
            x = stage(x)
            if i in self.out_indices:
                norm_layer = getattr(self, f'norm{i}')
                if self.gap_before_final_norm:
                    outs.append(norm_layer(x.mean([-2, -1], keepdim=True)).flatten(1))
                else:
                    outs.append(norm_layer(x))
        return tuple(outs)
