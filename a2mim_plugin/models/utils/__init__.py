from .masking import fill_masked_with_mean, mask_scale, upsample_mask

__all__ = ['fill_masked_with_mean', 'mask_scale', 'upsample_mask']
