"""Mask-aware ConvNeXt for A2MIM (Li et al., ICML 2023): a preset of the injection mechanism."""
from typing import Optional

from mmpretrain.models.backbones import ConvNeXt
from mmpretrain.registry import MODELS

from ..mask_injection import FeatureLayout
from .masked_backbone import MaskedBackboneMixin


@MODELS.register_module()
class A2MIMConvNeXt(MaskedBackboneMixin, ConvNeXt):
    """MMPretrain ``ConvNeXt`` with the A2MIM mask token after ``downsample_layers[k]``.

    ``mask_layer`` k acts on the output of the k-th downsampling, before ``stages[k]``: stride
    4, 8, 16 and 32 for k = 0..3. The official rows use k = 3 (7x7 at 224 px,
    ``model_patch_size=32``).

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

    plain_type = 'ConvNeXt'
    plain_defaults = dict(gap_before_final_norm=False)

    def __init__(self, mask_layer: int = 3, mask_token: Optional[str] = 'learnable',
                 replace: bool = False, mask_init: float = 0., token_init: str = 'zeros',
                 **kwargs) -> None:
        super().__init__(**self._with_defaults(kwargs))
        self._check_mask_layer(mask_layer, len(self.stages),
                               'the downsampling after which the token is injected')
        self.mask_layer = mask_layer
        self._attach_mask_token(
            f'downsample_layers.{mask_layer}', 'output', self.channels[mask_layer],
            FeatureLayout('NCHW'),
            f'after downsample_layers[{mask_layer}] (mask_layer={mask_layer})', mask_token,
            replace, mask_init, token_init)
