"""Mask geometry and the image-mean fill of A2MIM (Li et al., ICML 2023, Sec. 3.2)."""
from typing import Tuple

import torch


def mask_scale(image_hw: Tuple[int, int], mask_hw: Tuple[int, int]) -> int:
    """Pixels per mask cell along each side, checked to be one integer.

    Args:
        image_hw: (H, W) of the image.
        mask_hw: (h, w) of the mask grid.

    Returns:
        The integer scale ``s`` with ``H == s * h`` and ``W == s * w``.

    Raises:
        ValueError: if the image is not an integer multiple of the mask grid.
    """
    (H, W), (h, w) = image_hw, mask_hw
    if h == 0 or w == 0 or H % h or W % w or H // h != W // w:
        raise ValueError(
            f'The {h}x{w} mask does not divide the {H}x{W} image into square '
            'cells of an integer size. Make input_size a multiple of '
            'model_patch_size in SimMIMMaskGenerator and crop the images to '
            'that input_size.')
    return H // h


def upsample_mask(mask: torch.Tensor, image_hw: Tuple[int, int]) -> torch.Tensor:
    """Nearest upsampling of a cell mask to pixels.

    Args:
        mask: (B, h, w) mask, 1 = masked.
        image_hw: (H, W) target size, an integer multiple of (h, w).

    Returns:
        (B, 1, H, W) mask with the dtype of ``mask``.
    """
    s = mask_scale(image_hw, mask.shape[-2:])
    return mask.repeat_interleave(s, dim=1).repeat_interleave(s, dim=2).unsqueeze(1)


def fill_masked_with_mean(images: torch.Tensor, pixel_mask: torch.Tensor) -> torch.Tensor:
    """Fill masked pixels with each image's own per-channel mean.

    The mean is taken over the whole crop (masked area included), on the normalised image, as
    the official data pipeline does; because normalisation is affine per channel this equals the
    RGB mean of the image in pixel space. Any channel count C works the same way (gray,
    multispectral).

    Args:
        images: (B, C, H, W) normalised images.
        pixel_mask: (B, 1, H, W) mask at pixel resolution, 1 = masked.

    Returns:
        (B, C, H, W) images whose masked pixels hold the per-image channel mean.
    """
    mean = images.mean(dim=(2, 3), keepdim=True)  # (B, C, 1, 1)
    return torch.where(pixel_mask.bool(), mean, images)
