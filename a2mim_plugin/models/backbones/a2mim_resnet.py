"""Mask-aware ResNet for A2MIM (Li et al., ICML 2023)."""
from typing import Optional, Tuple

import torch
from mmpretrain.models.backbones import ResNet
from mmpretrain.models.backbones.resnet import Bottleneck
from mmpretrain.registry import MODELS

from .mask_token import MaskTokenMixin


@MODELS.register_module()
class A2MIMResNet(MaskTokenMixin, ResNet):
    """MMPretrain ``ResNet`` that injects the A2MIM mask token before ``res_layers[mask_layer]``.

    ``mask_layer`` 0 acts after the stem and max-pool (stride 4), 1 after layer1 (stride 4),
    2 after layer2 (stride 8), 3 after layer3 (stride 16, the official A2MIM setting). The mask
    must already be on that grid (``model_patch_size`` = the stride).

    Args:
        mask_layer: stage index in [0, 3]. Defaults to 3.
        mask_token: 'learnable' (default), 'zero', 'randn', 'mean', 'instance_mean' or None.
        replace: True substitutes the token (SimMIM); False adds it (A2MIM, default).
        mask_init: initial ``mask_gamma`` scaling masked features (1e-6 in the official
            300-epoch rows); 0 creates no gamma. Defaults to 0.
        token_init: 'trunc_normal' (default: the official code since 2023-03) or 'zeros' (the
            paper-era runs, whose inverted init condition left the token at zero).
        **kwargs: ``ResNet`` arguments. ``depth`` also accepts 200 (Bottleneck, 3-24-36-3, as
            the official ResNet-200 row), which MMPretrain's ``ResNet`` lacks; downstream, load
            such weights into ``A2MIMResNet(depth=200, mask_token=None)``, which is then a
            plain ResNet-200.
    """

    arch_settings = {**ResNet.arch_settings, 200: (Bottleneck, (3, 24, 36, 3))}

    def __init__(self, mask_layer: int = 3, mask_token: Optional[str] = 'learnable',
                 replace: bool = False, mask_init: float = 0., token_init: str = 'trunc_normal',
                 **kwargs) -> None:
        super().__init__(**kwargs)
        if not 0 <= mask_layer < len(self.res_layers):
            raise ValueError(f'A2MIMResNet: mask_layer must be in [0, {len(self.res_layers) - 1}]'
                             f' (the stage before which the token is injected), got {mask_layer}.')
        self.mask_layer = mask_layer
        channels = self.stem_channels if mask_layer == 0 else \
            getattr(self, self.res_layers[mask_layer - 1])[-1].out_channels
        self._init_mask_token(channels, mask_token, replace, mask_init, token_init,
                              channels_first=True)

    def init_weights(self) -> None:
        super().init_weights()
        if not (isinstance(self.init_cfg, dict) and self.init_cfg.get('type') == 'Pretrained'):
            self._init_mask_token_weights()

    def forward(self, x: torch.Tensor,
                mask: Optional[torch.Tensor] = None) -> Tuple[torch.Tensor, ...]:
        """Encode images, injecting the mask token when ``mask`` is given.

        Args:
            x: (B, 3, H, W) images.
            mask: (B, h, w) mask on the grid of the injection point, or None for plain ResNet.

        Returns:
            The feature maps of ``out_indices``.
        """
        if mask is None:
            return super().forward(x)
        input_hw = x.shape[-2:]
        if self.deep_stem:
            x = self.stem(x)
        else:
            x = self.relu(self.norm1(self.conv1(x)))
        x = self.maxpool(x)
        outs = []
        for i, layer_name in enumerate(self.res_layers):
            if i == self.mask_layer:
                self._check_mask_grid(mask, x.shape[-2:], input_hw,
                                      f'before res_layers[{i}] (mask_layer={i})')
                x = self._inject_mask_token(x, mask)
            x = getattr(self, layer_name)(x)
            if i in self.out_indices:
                outs.append(x)
        return tuple(outs)
