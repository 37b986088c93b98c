"""Base of the preset mask-aware backbones: a stock MMPretrain backbone with the A2MIM mask token
at a fixed, numbered point (Li et al., ICML 2023, Sec. 3.2).

A preset only names the point of its ``mask_layer`` and the stock class it extends; the masked
forward pass is the stock ``forward`` run under :class:`MaskTokenInjection` (no copy of a
parent's ``forward``). ``forward(x, mask=None)`` is the plain parent without a mask.
"""
from typing import Any, ClassVar, Dict, Optional, Tuple

import torch

from ..mask_injection import FeatureLayout, MaskTokenInjection

# Arguments of the presets that only concern masking; the stock parents lack them.
PRESET_MASK_ARGS = ('mask_layer', 'mask_token', 'replace', 'mask_init', 'token_init')


class MaskedBackboneMixin:
    """Gives a stock backbone class ``mask_token`` / ``mask_gamma`` at a named point and a
    ``forward(x, mask=None)``.

    Class attributes:
        plain_type: the registered MMPretrain name of the stock parent (what the weights load
            into downstream).
        plain_defaults: parent arguments the preset sets by default (its pre-training form).
    """

    plain_type: ClassVar[str]
    plain_defaults: ClassVar[Dict[str, Any]] = {}
    mask_injection: MaskTokenInjection

    @classmethod
    def _with_defaults(cls, kwargs: dict) -> dict:
        for key, value in cls.plain_defaults.items():
            kwargs.setdefault(key, value)
        return kwargs

    @classmethod
    def plain_config(cls, cfg: dict) -> dict:
        """The stock backbone config whose state dict is this preset's minus the mask keys."""
        plain = {k: v for k, v in cfg.items() if k not in PRESET_MASK_ARGS + ('type', )}
        return dict(type=cls.plain_type, **cls._with_defaults(plain))

    def _check_mask_layer(self, mask_layer: int, num_points: int, what: str) -> None:
        if not 0 <= mask_layer < num_points:
            raise ValueError(f'{type(self).__name__}: mask_layer must be in [0, '
                             f'{num_points - 1}] ({what}), got {mask_layer}.')

    def _attach_mask_token(self, at: str, on: str, channels: int, layout: FeatureLayout,
                           where: str, mask_token: Optional[str], replace: bool,
                           mask_init: float, token_init: str) -> None:
        self.mask_injection = MaskTokenInjection(
            self, at=at, on=on, kind=mask_token, replace=replace, mask_init=mask_init,
            token_init=token_init, channels=channels, layout=layout, where=where,
            fix='or choose the mask_layer whose stride equals your model_patch_size')

    def init_weights(self) -> None:
        super().init_weights()
        self.mask_injection.init_weights(self.init_cfg)

    def forward(self, x: torch.Tensor,
                mask: Optional[torch.Tensor] = None) -> Tuple[torch.Tensor, ...]:
        """Encode images, with the mask token at ``mask_layer`` when ``mask`` is given.

        Args:
            x: (B, 3, H, W) images.
            mask: (B, h, w) mask on the grid of the injection point (1 = masked), or None for
                the plain parent backbone.

        Returns:
            The parent's outputs.
        """
        return self.mask_injection.run(super().forward, x, mask)
