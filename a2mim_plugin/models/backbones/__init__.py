"""Preset mask-aware backbones: stock MMPretrain backbones with the A2MIM mask token at a
numbered point (``mask_layer``), over the one mechanism of ``models/mask_injection``."""
from .a2mim_convnext import A2MIMConvNeXt
from .a2mim_resnet import A2MIMResNet
from .a2mim_vit import A2MIMPlainViT, A2MIMViT
from .masked_backbone import PRESET_MASK_ARGS, MaskedBackboneMixin

__all__ = [
    'A2MIMConvNeXt', 'A2MIMPlainViT', 'A2MIMResNet', 'A2MIMViT', 'MaskedBackboneMixin',
    'PRESET_MASK_ARGS'
]
