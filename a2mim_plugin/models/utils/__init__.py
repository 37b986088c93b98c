from .masking import fill_masked_with_mean, mask_scale, upsample_mask
from .strict_pretrained import StrictPretrained

__all__ = ['StrictPretrained', 'fill_masked_with_mean', 'mask_scale', 'upsample_mask']
