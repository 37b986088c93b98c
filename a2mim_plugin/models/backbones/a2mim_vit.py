"""Mask-aware Vision Transformers for A2MIM (Li et al., ICML 2023).

``A2MIMViT`` extends MMPretrain's ``BEiTViT``: the ViT of the official A2MIM pre-training and
fine-tuning (absolute position embedding plus a per-layer relative position bias, layer scale,
q/v bias; ``'small'`` is 768-d x 8 layers). ``A2MIMPlainViT`` extends MMPretrain's plain
``VisionTransformer``. Both inject the mask token as the official ``SimMIMViT`` does:

* ``mask_layer=0``: on the patch embeddings, before the cls token and the position embedding;
* ``mask_layer=k >= 1``: on the patch tokens (not cls) right before block ``k`` (1-indexed),
  i.e. after ``k - 1`` blocks.

With ``mask=None`` the forward pass is exactly the parent backbone's.
"""
from typing import Optional, Tuple

import torch
from mmengine.model.weight_init import trunc_normal_
from mmpretrain.models.backbones import BEiTViT, VisionTransformer
from mmpretrain.models.utils import resize_pos_embed
from mmpretrain.registry import MODELS

from .mask_token import MaskTokenMixin


class _MaskedViTMixin(MaskTokenMixin):
    """The masked forward pass shared by both ViT flavours."""

    def _setup_masking(self, mask_layer: int, mask_token: Optional[str], replace: bool,
                       mask_init: float, token_init: str) -> None:
        if not 0 <= mask_layer < self.num_layers:
            raise ValueError(f'{type(self).__name__}: mask_layer must be in [0, '
                             f'{self.num_layers - 1}] for {self.num_layers} layers, got '
                             f'{mask_layer}.')
        self.mask_layer = mask_layer
        self._init_mask_token(self.embed_dims, mask_token, replace, mask_init, token_init,
                              channels_first=False)

    def init_weights(self) -> None:
        super().init_weights()
        if not (isinstance(self.init_cfg, dict) and self.init_cfg.get('type') == 'Pretrained'):
            self._init_mask_token_weights()

    def _layer_args(self) -> tuple:
        """Extra positional arguments of every transformer layer."""
        return ()

    def _before_layers(self, x: torch.Tensor) -> torch.Tensor:
        return x

    def forward(self, x: torch.Tensor,
                mask: Optional[torch.Tensor] = None) -> Tuple[torch.Tensor, ...]:
        """Encode images, injecting the mask token when ``mask`` is given.

        Args:
            x: (B, 3, H, W) images.
            mask: (B, H/p, W/p) patch mask, 1 = masked, or None for the plain backbone.

        Returns:
            The parent's tuple of outputs (``out_indices``, ``out_type``).
        """
        if mask is None:
            return super().forward(x)
        input_hw = x.shape[-2:]
        x, patch_hw = self.patch_embed(x)  # (B, L, C), L = h * w
        self._check_mask_grid(mask, patch_hw, input_hw, 'of the patch embedding')
        if self.mask_layer == 0:
            x = self._inject_mask_token(x, mask)
        if self.cls_token is not None:
            x = torch.cat((self.cls_token.expand(x.shape[0], -1, -1), x), dim=1)
        if self.pos_embed is not None:
            x = x + resize_pos_embed(self.pos_embed, self.patch_resolution, patch_hw,
                                     mode=self.interpolate_mode,
                                     num_extra_tokens=self.num_extra_tokens)
        x = self._before_layers(self.drop_after_pos(x))

        n = self.num_extra_tokens
        layer_args = self._layer_args()
        outs = []
        for i, layer in enumerate(self.layers):
            if self.mask_layer == i + 1:
                x = torch.cat((x[:, :n], self._inject_mask_token(x[:, n:], mask)), dim=1)
            x = layer(x, *layer_args)
            if i == len(self.layers) - 1 and self.final_norm:
                x = self.ln1(x)
            if i in self.out_indices:
                outs.append(self._format_output(x, patch_hw))
        return tuple(outs)


@MODELS.register_module()
class A2MIMViT(_MaskedViTMixin, BEiTViT):
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

    def __init__(self, mask_layer: int = 0, mask_token: Optional[str] = 'learnable',
                 replace: bool = False, mask_init: float = 0., token_init: str = 'trunc_normal',
                 **kwargs) -> None:
        kwargs.setdefault('use_abs_pos_emb', True)
        kwargs.setdefault('use_rel_pos_bias', True)
        kwargs.setdefault('layer_scale_init_value', 0.1)
        kwargs.setdefault('final_norm', True)
        kwargs.setdefault('out_type', 'featmap')
        super().__init__(**kwargs)
        self._setup_masking(mask_layer, mask_token, replace, mask_init, token_init)

    def _layer_args(self) -> tuple:
        return (self.rel_pos_bias() if self.rel_pos_bias is not None else None, )

    def init_weights(self) -> None:
        super().init_weights()
        if not (isinstance(self.init_cfg, dict) and self.init_cfg.get('type') == 'Pretrained'):
            if self.cls_token is not None:  # as the official ViT; BEiTViT leaves it at zero
                trunc_normal_(self.cls_token, std=.02)


@MODELS.register_module()
class A2MIMPlainViT(_MaskedViTMixin, VisionTransformer):
    """MMPretrain's plain ``VisionTransformer`` with A2MIM mask-token injection.

    Args are those of :class:`A2MIMViT` plus ``VisionTransformer``'s (defaults here: final
    norm and feature-map output for pre-training). Weights load into a plain
    ``VisionTransformer`` of the same arch.
    """

    def __init__(self, mask_layer: int = 0, mask_token: Optional[str] = 'learnable',
                 replace: bool = False, mask_init: float = 0., token_init: str = 'trunc_normal',
                 **kwargs) -> None:
        kwargs.setdefault('final_norm', True)
        kwargs.setdefault('out_type', 'featmap')
        super().__init__(**kwargs)
        self._setup_masking(mask_layer, mask_token, replace, mask_init, token_init)

    def _before_layers(self, x: torch.Tensor) -> torch.Tensor:
        return self.pre_norm(x)
