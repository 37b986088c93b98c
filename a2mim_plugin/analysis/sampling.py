"""Seeded sampling of patch pairs and contexts for the multi-order interaction (Deng et al.,
ICLR 2022; the protocol of Li et al., ICML 2023, Fig. 1).

Every draw comes from a generator seeded by ``(seed, image key, purpose[, order])``, so a rerun,
a resumed run or a run with more images or models sees exactly the same pairs and contexts for
an image, whatever else is in the run.
"""
import itertools
import math
from typing import Sequence

import numpy as np

PAIR_STREAM = 0
CONTEXT_STREAM = 1


def image_rng(seed: int, image_key: str, *stream: int) -> np.random.Generator:
    """A generator for one image (and one purpose / order).

    Args:
        seed: the run's seed.
        image_key: hexadecimal content hash of the image (see ``LabelledImage.key``).
        *stream: further non-negative integers, e.g. ``CONTEXT_STREAM, order``.
    """
    return np.random.default_rng([seed, int(image_key[:32], 16), *stream])


def neighbour_pairs(grid_size: int, neighbourhood: int = 5) -> np.ndarray:
    """Every unordered pair of distinct patches whose offset fits a ``neighbourhood`` window.

    Args:
        grid_size: g of the g x g patch grid (patches numbered row-major).
        neighbourhood: odd side of the window around the first patch.

    Returns:
        (K, 2) int64 array of pairs ``i < j``, in row-major order of ``(i, j)``.
    """
    radius = _radius(neighbourhood)
    pairs = []
    for i in range(grid_size * grid_size):
        yi, xi = divmod(i, grid_size)
        for j in range(i + 1, grid_size * grid_size):
            yj, xj = divmod(j, grid_size)
            if abs(yi - yj) <= radius and abs(xi - xj) <= radius:
                pairs.append((i, j))
    return np.asarray(pairs, dtype=np.int64).reshape(-1, 2)


def sample_pairs(grid_size: int, num_pairs: int, rng: np.random.Generator,
                 neighbourhood: int = 5) -> np.ndarray:
    """Unique unordered neighbouring pairs, as the public tools draw them.

    ``i`` is uniform on the grid and ``j = i + d`` for one of the ``neighbourhood**2 - 1``
    non-zero offsets ``d``, clamped at the border; draws with ``j == i`` or an already drawn pair
    are discarded. When ``num_pairs`` is at least the number of such pairs, all of them are
    returned (the exact average over pairs).

    Args:
        grid_size: g of the g x g grid.
        num_pairs: pairs wanted.
        rng: the image's pair generator.
        neighbourhood: odd side of the window. Defaults to 5 (24 offsets).

    Returns:
        (P, 2) int64 array of pairs ``i < j`` in the order they were drawn.
    """
    if num_pairs < 1:
        raise ValueError(f'num_pairs must be >= 1, got {num_pairs}.')
    every = neighbour_pairs(grid_size, neighbourhood)
    if num_pairs >= len(every):
        return every
    radius = _radius(neighbourhood)
    offsets = np.asarray([(dy, dx) for dy in range(-radius, radius + 1)
                          for dx in range(-radius, radius + 1) if (dy, dx) != (0, 0)])
    chosen, seen = [], set()
    while len(chosen) < num_pairs:
        first = rng.integers(0, grid_size * grid_size, size=4 * num_pairs)
        step = offsets[rng.integers(0, len(offsets), size=4 * num_pairs)]
        y = np.clip(first // grid_size + step[:, 0], 0, grid_size - 1)
        x = np.clip(first % grid_size + step[:, 1], 0, grid_size - 1)
        for i, j in zip(first.tolist(), (y * grid_size + x).tolist()):
            pair = (min(i, j), max(i, j))
            if i != j and pair not in seen:
                seen.add(pair)
                chosen.append(pair)
                if len(chosen) == num_pairs:
                    break
    return np.asarray(chosen, dtype=np.int64)


def contexts_per_pair(num_patches: int, order: int, num_contexts: int) -> int:
    """How many contexts one (pair, order) uses: ``min(num_contexts, C(n - 2, m))``."""
    return min(num_contexts, math.comb(num_patches - 2, order))


def sample_contexts(num_patches: int, pair: Sequence[int], order: int, num_contexts: int,
                    rng: np.random.Generator) -> np.ndarray:
    """Distinct contexts S, |S| = ``order``, of the patches other than ``pair``.

    Contexts are drawn uniformly without replacement from the ``C(n - 2, m)`` possible ones;
    when there are at most ``num_contexts`` of them, every context is used (in lexicographic
    order), which makes the average over contexts exact.

    Args:
        num_patches: n.
        pair: the two patches (i, j).
        order: m, with 0 <= m <= n - 2.
        num_contexts: contexts wanted.
        rng: the generator of this image and order.

    Returns:
        (C, m) int64 array, each row sorted ascending, C = ``contexts_per_pair(...)``.
    """
    if not 0 <= order <= num_patches - 2:
        raise ValueError(f'order must lie in [0, {num_patches - 2}], got {order}.')
    if num_contexts < 1:
        raise ValueError(f'num_contexts must be >= 1, got {num_contexts}.')
    others = np.setdiff1d(np.arange(num_patches), np.asarray(pair))
    total = math.comb(len(others), order)
    if total <= num_contexts:
        return np.asarray(list(itertools.combinations(others.tolist(), order)),
                          dtype=np.int64).reshape(total, order)
    if total <= 4 * num_contexts:  # few contexts: pick among all of them
        every = np.asarray(list(itertools.combinations(others.tolist(), order)), dtype=np.int64)
        return every[np.sort(rng.choice(total, size=num_contexts, replace=False))]
    chosen, seen = [], set()
    while len(chosen) < num_contexts:
        draws = np.sort(np.argsort(rng.random((num_contexts, len(others))), axis=1)[:, :order],
                        axis=1)
        for row in others[draws]:
            key = row.tobytes()
            if key not in seen:
                seen.add(key)
                chosen.append(row)
                if len(chosen) == num_contexts:
                    break
    return np.stack(chosen).astype(np.int64).reshape(num_contexts, order)


def _radius(neighbourhood: int) -> int:
    if neighbourhood < 3 or neighbourhood % 2 == 0:
        raise ValueError(f'neighbourhood must be an odd window side >= 3, got {neighbourhood}.')
    return neighbourhood // 2
