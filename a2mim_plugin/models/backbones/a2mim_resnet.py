"""Mask-aware ResNet for A2MIM (Li et al., ICML 2023): a preset of the injection mechanism."""
from typing import Optional

from mmpretrain.models.backbones import ResNet
from mmpretrain.models.backbones.resnet import Bottleneck
from mmpretrain.registry import MODELS

from ..mask_injection import FeatureLayout
from .masked_backbone import MaskedBackboneMixin


@MODELS.register_module()
class A2MIMResNet(MaskedBackboneMixin, ResNet):
    """MMPretrain ``ResNet`` with the A2MIM mask token on the input of ``res_layers[mask_layer]``.

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

    plain_type = 'ResNet'
    arch_settings = {**ResNet.arch_settings, 200: (Bottleneck, (3, 24, 36, 3))}

    def __init__(self, mask_layer: int = 3, mask_token: Optional[str] = 'learnable',
                 replace: bool = False, mask_init: float = 0., token_init: str = 'trunc_normal',
                 **kwargs) -> None:
        super().__init__(**self._with_defaults(kwargs))
        self._check_mask_layer(mask_layer, len(self.res_layers),
                               'the stage before which the token is injected')
        self.mask_layer = mask_layer
        channels = self.stem_channels if mask_layer == 0 else \
            getattr(self, self.res_layers[mask_layer - 1])[-1].out_channels
        self._attach_mask_token(
            self.res_layers[mask_layer], 'input', channels, FeatureLayout('NCHW'),
            f'before res_layers[{mask_layer}] (mask_layer={mask_layer})', mask_token, replace,
            mask_init, token_init)
