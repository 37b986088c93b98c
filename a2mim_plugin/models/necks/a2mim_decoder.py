"""Linear decoder of A2MIM (Li et al., ICML 2023): conv to stride^2 * C channels, PixelShuffle."""
from typing import Optional

from mmpretrain.models.necks import SimMIMLinearDecoder
from mmpretrain.registry import MODELS
from torch import nn


@MODELS.register_module()
class A2MIMLinearDecoder(SimMIMLinearDecoder):
    """SimMIM's linear decoder with the official ``NonLinearMIMNeck`` options.

    Args:
        in_channels: channels of the encoder's last feature map.
        encoder_stride: total stride of the encoder (16 for ViT/p16, 32 for ResNet/ConvNeXt).
        kernel_size: odd size of the prediction conv (1 in every official row).
        out_channels: image channels to predict (1 gray, 3 RGB, C multispectral); the
            model checks it against the backbone's stem and the data preprocessor. Defaults to 3.
        init_cfg: defaults to the official TruncNormal(std 0.02) conv init with zero bias.
    """

    def __init__(self, in_channels: int, encoder_stride: int, kernel_size: int = 1,
                 out_channels: int = 3, init_cfg: Optional[dict] = dict(
                     type='TruncNormal', layer='Conv2d', std=0.02, bias=0.)) -> None:
        if kernel_size < 1 or kernel_size % 2 == 0:
            raise ValueError(f'A2MIMLinearDecoder: kernel_size must be odd, got {kernel_size}.')
        super().__init__(in_channels=in_channels, encoder_stride=encoder_stride)
        self.init_cfg = init_cfg
        self.decoder[0] = nn.Conv2d(in_channels, encoder_stride**2 * out_channels,
                                    kernel_size=kernel_size, padding=kernel_size // 2)
