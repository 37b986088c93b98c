"""A2MIM model parts, registered into MMPretrain's ``MODELS`` registry."""
from .algorithms import A2MIM
from .backbones import A2MIMConvNeXt, A2MIMPlainViT, A2MIMResNet, A2MIMViT
from .heads import A2MIMHead
from .losses import ElementwiseL1Loss, FocalFrequencyLoss, FocalL1Loss
from .necks import A2MIMLinearDecoder

__all__ = [
    'A2MIM', 'A2MIMConvNeXt', 'A2MIMHead', 'A2MIMLinearDecoder', 'A2MIMPlainViT', 'A2MIMResNet',
    'A2MIMViT', 'ElementwiseL1Loss', 'FocalFrequencyLoss', 'FocalL1Loss'
]
