from .data_preprocessor import MultiChannelDataPreprocessor
from .masking import fill_masked_with_mean, mask_scale, upsample_mask
from .strict_pretrained import StrictPretrainedInit, register_strict_pretrained

__all__ = [
    'MultiChannelDataPreprocessor', 'StrictPretrainedInit', 'fill_masked_with_mean', 'mask_scale',
    'register_strict_pretrained', 'upsample_mask'
]
