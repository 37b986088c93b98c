"""Resize BEiT relative-position-bias tables without ``scipy.interpolate.interp2d``.

A2MIM ViTs carry one relative position bias table per block. When such a ViT is pre-trained at
224 px and transferred at another size (512 px segmentation, 1024 px detection),
``BEiTViT``'s load hook resizes every table with BEiT's scheme: the source offsets are spread
over the target range on a geometric progression (dense near offset 0, sparse at the edges)
and each head's bias is interpolated with a 2-D cubic spline. MMPretrain 1.2.0 (and
MMSegmentation's own ``BEiT``) build that spline with ``scipy.interpolate.interp2d``, which
SciPy 1.14 removed; with a current SciPy every such transfer dies while loading the
checkpoint.

This module computes the same resize with ``RectBivariateSpline`` (the interpolating cubic
spline on a regular grid that ``interp2d`` used). :func:`patch_beit_rel_pos_resize`, which
``import a2mim_plugin`` calls (``a2mim_plugin.registration.repair_beit_rel_pos_resize``),
installs it in place of MMPretrain's module-level function for ``BEiTViT`` and
``SwinTransformer`` **only when** ``interp2d`` is unusable, i.e. it repairs a dependency that
cannot work on the installed SciPy and changes nothing where the original still runs.
"""
from typing import Tuple

import numpy as np
import torch


def _geometric_offsets(src_size: int, dst_size: int) -> Tuple[np.ndarray, np.ndarray]:
    """Positions of the source offsets and the integer target offsets (BEiT's scheme).

    The ``src_size // 2`` positive source offsets are placed at the partial sums of
    ``1, q, q**2, ...``, with ``q`` found by bisection so that they reach ``dst_size // 2``.
    """
    half_src, half_dst = src_size // 2, dst_size // 2
    low, high = 1.01, 1.5
    ratio = (low + high) / 2.
    while high - low > 1e-6:
        ratio = (low + high) / 2.
        reach = (1. - ratio**half_src) / (1. - ratio)
        if reach > half_dst:
            high = ratio
        else:
            low = ratio
    positive = np.cumsum([ratio**i for i in range(half_src)])
    src = np.concatenate([-positive[::-1], [0.], positive])
    dst = np.arange(-half_dst, half_dst + 0.1, 1.0)
    return src, dst


def resize_rel_pos_bias_table(src_size: int, dst_size: int, table: torch.Tensor,
                              num_heads: int) -> torch.Tensor:
    """Resize the offset grid of a relative position bias table.

    Args:
        src_size: side of the source offset grid (``2 * window - 1``).
        dst_size: side of the target offset grid.
        table: ``(src_size ** 2, num_heads)`` biases, without BEiT's 3 cls-token rows.
        num_heads: number of attention heads (columns of ``table``).

    Returns:
        ``(dst_size ** 2, num_heads)`` biases, same dtype and device as ``table``.
    """
    from scipy.interpolate import RectBivariateSpline

    src, dst = _geometric_offsets(src_size, dst_size)
    grid = table.detach().float().cpu().numpy().reshape(src_size, src_size, num_heads)
    heads = []
    for head in range(num_heads):
        spline = RectBivariateSpline(src, src, grid[..., head], kx=3, ky=3, s=0)
        heads.append(torch.from_numpy(spline(dst, dst).reshape(-1, 1)))
    return torch.cat(heads, dim=1).to(dtype=table.dtype, device=table.device)


def interp2d_usable() -> bool:
    """Whether ``scipy.interpolate.interp2d`` (removed in SciPy 1.14) still runs here."""
    try:
        from scipy.interpolate import interp2d
        axis = np.arange(4.)
        interp2d(axis, axis, np.zeros((4, 4)), kind='cubic')
    except Exception:  # removed in SciPy >= 1.14 (raises NotImplementedError)
        return False
    return True


def patch_beit_rel_pos_resize(force: bool = False) -> bool:
    """Use :func:`resize_rel_pos_bias_table` in MMPretrain's BEiT / Swin load hooks.

    Does nothing while ``scipy.interpolate.interp2d`` still works, unless ``force``.

    Returns:
        Whether the hooks now use this module's function.
    """
    from mmpretrain.models.backbones import beit, swin_transformer

    if not force and interp2d_usable():
        return False
    for module in (beit, swin_transformer):
        module.resize_relative_position_bias_table = resize_rel_pos_bias_table
    return True
