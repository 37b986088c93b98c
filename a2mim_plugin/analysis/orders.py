"""The orders at which interactions are measured (Li et al., ICML 2023, Fig. 1; Deng et al.,
ICLR 2022, Sec. 3)."""
from typing import Sequence, Tuple

# Ratios m / (n - 2) of the 13-order grid both papers plot.
ORDER_RATIOS: Tuple[float, ...] = (0.0, 0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95,
                                   1.0)


def interaction_orders(num_patches: int,
                       ratios: Sequence[float] = ORDER_RATIOS) -> Tuple[int, ...]:
    """Context sizes ``m = int((n - 2) * r)`` of the ratio grid, each once, ascending.

    For n = 196 the 13 ratios give 13 distinct orders (0, 9, 19, ..., 184, 194); on tiny grids
    several ratios fall on the same order, which is then measured once.

    Args:
        num_patches: n, the number of players (patches) of the grid.
        ratios: ratios in [0, 1].

    Returns:
        The distinct orders, ascending.
    """
    if num_patches < 2:
        raise ValueError(f'An interaction needs at least 2 patches, got a grid of {num_patches}; '
                         'increase grid_size.')
    if not ratios or any(not 0. <= r <= 1. for r in ratios):
        raise ValueError(f'Order ratios must lie in [0, 1], got {tuple(ratios)}.')
    return tuple(sorted({int((num_patches - 2) * r) for r in ratios}))
