"""Keeping a subset of patches and replacing the others with a baseline (the players' absence
in the multi-order interaction of Deng et al., ICLR 2022)."""
from typing import Tuple

import numpy as np
import torch

# 'dataset_mean': removed patches are 0 in normalised space, i.e. the dataset channel mean (the
# public tools); 'image_mean': each image's own channel mean (A2MIM's pre-training fill).
BASELINES = ('dataset_mean', 'image_mean')


def baseline_image(image: torch.Tensor, baseline: str) -> torch.Tensor:
    """The value removed patches take, broadcastable to ``image``.

    Args:
        image: (3, H, W) normalised image.
        baseline: one of :data:`BASELINES`.

    Returns:
        (3, 1, 1) tensor: zeros or the image's per-channel mean.
    """
    if baseline == 'dataset_mean':
        return image.new_zeros(image.shape[0], 1, 1)
    if baseline == 'image_mean':
        return image.mean(dim=(1, 2), keepdim=True)
    raise ValueError(f'Unknown baseline {baseline!r}; choose one of {BASELINES}.')


def patch_size(image_hw: Tuple[int, int], grid_size: int) -> int:
    """Pixels per patch side, checked to divide the image exactly."""
    height, width = image_hw
    if grid_size < 1 or height % grid_size or width % grid_size or height != width:
        raise ValueError(f'A {grid_size} x {grid_size} patch grid does not split the '
                         f'{height} x {width} image into equal square patches; choose a '
                         'grid_size (--grid) that divides the crop size (--crop-size).')
    return height // grid_size


def keep_masks(pairs: np.ndarray, contexts: np.ndarray, num_patches: int) -> np.ndarray:
    """The four players' sets of every (pair, context): S, S + i, S + j, S + i + j.

    Args:
        pairs: (P, 2) patch pairs.
        contexts: (P, C, m) contexts of each pair.
        num_patches: n.

    Returns:
        (P, C, 4, n) bool array, True = patch kept; the last-but-one axis is ordered
        (S, S + i, S + j, S + i + j).
    """
    num_pairs, num_contexts = contexts.shape[:2]
    keep = np.zeros((num_pairs, num_contexts, 4, num_patches), dtype=bool)
    rows = np.arange(num_pairs)[:, None, None]
    cols = np.arange(num_contexts)[None, :, None]
    keep[rows, cols, :, contexts] = True  # every variant keeps the context
    keep[np.arange(num_pairs), :, 1, pairs[:, 0]] = True
    keep[np.arange(num_pairs), :, 2, pairs[:, 1]] = True
    keep[np.arange(num_pairs), :, 3, pairs[:, 0]] = True
    keep[np.arange(num_pairs), :, 3, pairs[:, 1]] = True
    return keep


def apply_keep_masks(image: torch.Tensor, keep: torch.Tensor, baseline: torch.Tensor,
                     grid_size: int) -> torch.Tensor:
    """Images that show only the kept patches.

    Args:
        image: (3, H, W) normalised image.
        keep: (B, n) bool, True = patch kept, patches row-major on the ``grid_size`` grid.
        baseline: (3, 1, 1) or (3, H, W) value of removed pixels.
        grid_size: g.

    Returns:
        (B, 3, H, W) masked images.
    """
    size = patch_size(image.shape[-2:], grid_size)
    pixel_keep = keep.view(-1, 1, grid_size, grid_size)
    pixel_keep = pixel_keep.repeat_interleave(size, 2).repeat_interleave(size, 3)
    return torch.where(pixel_keep, image, baseline.expand_as(image))
