from .a2mim_convnext import A2MIMConvNeXt
from .a2mim_resnet import A2MIMResNet
from .a2mim_vit import A2MIMPlainViT, A2MIMViT

__all__ = ['A2MIMConvNeXt', 'A2MIMPlainViT', 'A2MIMResNet', 'A2MIMViT']
