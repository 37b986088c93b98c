"""Mask-aware Vision Transformers for A2MIM (Li et al., ICML 2023): presets of the injection
mechanism.

``A2MIMViT`` extends MMPretrain's ``BEiTViT``: the ViT of the official A2MIM pre-training and
fine-tuning (absolute position embedding plus a per-layer relative position bias, layer scale,
q/v bias; ``'small'`` is 768-d x 8 layers). ``A2MIMPlainViT`` extends MMPretrain's plain
``VisionTransformer``. Both inject the mask token as the official ``SimMIMViT`` does:

* ``mask_layer=0``: on the patch embeddings (the output of ``patch_embed``), before the cls
  token and the position embedding;
* ``mask_layer=k >= 1``: on the patch tokens (not cls) of the input of block ``k``
  (1-indexed, ``layers[k - 1]``), i.e. after ``k - 1`` blocks.

With ``mask=None`` the forward pass is exactly the parent backbone's.
"""
from typing import Optional

from mmengine.model.weight_init import trunc_normal_
from mmpretrain.models.backbones import BEiTViT, VisionTransformer
from mmpretrain.registry import MODELS

from ..mask_injection import FeatureLayout, loads_pretrained
from .masked_backbone import MaskedBackboneMixin


class _ViTPresetMixin(MaskedBackboneMixin):
    """The numbered injection points shared by both ViT flavours."""

    def _attach_vit_mask_token(self, mask_layer: int, mask_token: Optional[str],
                               replace: bool, mask_init: float, token_init: str) -> None:
        self._check_mask_layer(mask_layer, self.num_layers, f'for {self.num_layers} layers')
        self.mask_layer = mask_layer
        if mask_layer == 0:
            at, on, extra, where = 'patch_embed', 'output', 0, 'of the patch embedding'
        else:
            at, on, extra = f'layers.{mask_layer - 1}', 'input', self.num_extra_tokens
            where = f'before block {mask_layer} (mask_layer={mask_layer})'
        self._attach_mask_token(at, on, self.embed_dims, FeatureLayout('NLC', extra), where,
                                mask_token, replace, mask_init, token_init)


@MODELS.register_module()
class A2MIMViT(_ViTPresetMixin, BEiTViT):
    """BEiT-style ViT with A2MIM mask-token injection (the official A2MIM ViT).

    Args:
        mask_layer: where the token is injected: 0 on the patch embeddings, k >= 1 before
            block k (1-indexed). Defaults to 0 (all official ImageNet ViT rows).
        mask_token: 'learnable' (default), 'zero', 'randn' (fixed N(0, 0.02)), 'mean' (batch-mean
            feature), 'instance_mean' (per-sample mean feature) or None (no token).
        replace: True substitutes the token (SimMIM); False adds it (A2MIM, default).
        mask_init: initial value of the per-channel ``mask_gamma`` that scales masked features
            when adding the token; 0 (default, as the ViT rows) creates no gamma.
        token_init: 'trunc_normal' (std 0.02, as the official ViT) or 'zeros'.
        **kwargs: ``BEiTViT`` arguments. The defaults here are the official pre-training ones:
            absolute and per-layer relative position embeddings, layer scale 0.1, final norm,
            feature-map output.
    """

    plain_type = 'BEiTViT'
    plain_defaults = dict(use_abs_pos_emb=True, use_rel_pos_bias=True,
                          layer_scale_init_value=0.1, final_norm=True, out_type='featmap')

    def __init__(self, mask_layer: int = 0, mask_token: Optional[str] = 'learnable',
                 replace: bool = False, mask_init: float = 0., token_init: str = 'trunc_normal',
                 **kwargs) -> None:
        super().__init__(**self._with_defaults(kwargs))
        self._attach_vit_mask_token(mask_layer, mask_token, replace, mask_init, token_init)

    def init_weights(self) -> None:
        super().init_weights()
        if not loads_pretrained(self.init_cfg) and self.cls_token is not None:
            trunc_normal_(self.cls_token, std=.02)  # as the official ViT; BEiTViT leaves zeros


@MODELS.register_module()
class A2MIMPlainViT(_ViTPresetMixin, VisionTransformer):
    """MMPretrain's plain ``VisionTransformer`` with A2MIM mask-token injection.

    Args are those of :class:`A2MIMViT` plus ``VisionTransformer``'s (defaults here: final
    norm and feature-map output for pre-training). Weights load into a plain
    ``VisionTransformer`` of the same arch.
    """

    plain_type = 'VisionTransformer'
    plain_defaults = dict(final_norm=True, out_type='featmap')

    def __init__(self, mask_layer: int = 0, mask_token: Optional[str] = 'learnable',
                 replace: bool = False, mask_init: float = 0., token_init: str = 'trunc_normal',
                 **kwargs) -> None:
        super().__init__(**self._with_defaults(kwargs))
        self._attach_vit_mask_token(mask_layer, mask_token, replace, mask_init, token_init)
