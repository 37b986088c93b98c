"""The multi-order interaction estimator (Deng et al., "Discovering and Explaining the
Representation Bottleneck of DNNs", ICLR 2022), as A2MIM uses it to compare pre-training
methods (Li et al., ICML 2023, Fig. 1).

For patches i, j of an image and a context S of m other patches,
``delta(i, j, S) = f(S + {i, j}) - f(S + {i}) - f(S + {j}) + f(S)``;
``I_m(i, j) = mean_{|S| = m} delta(i, j, S)``; the strength of order m is
``I_m = mean over images and pairs of |I_m(i, j)|`` and its relative strength
``J_m = I_m / mean_m' I_m'``.
"""
import hashlib
import json
from dataclasses import asdict, dataclass, field
from typing import Callable, Optional, Sequence, Tuple

import numpy as np
import torch

from .masking import BASELINES, apply_keep_masks, baseline_image, keep_masks
from .orders import ORDER_RATIOS, interaction_orders
from .outputs import OUTPUTS
from .sampling import (CONTEXT_STREAM, PAIR_STREAM, contexts_per_pair, image_rng,
                       neighbour_pairs, sample_contexts, sample_pairs)

ScoreFn = Callable[[torch.Tensor, int], torch.Tensor]


@dataclass(frozen=True)
class InteractionSettings:
    """What is measured; everything but ``batch_size`` enters the result cache key.

    Args:
        grid_size: g of the g x g patch grid (14 at 224 px in the paper).
        num_pairs: pairs per image (50 in the paper's ImageNet setting).
        num_contexts: contexts per (pair, order) (50); orders with fewer possible contexts
            use all of them.
        neighbourhood: odd side of the window the second patch of a pair comes from (5).
        seed: seed of the pair and context draws.
        output: ``f``, one of ``'log_odds'``, ``'log_prob'``, ``'logit'``.
        baseline: removed patches' value, ``'dataset_mean'`` (0 after normalisation) or
            ``'image_mean'`` (the image's channel mean, as A2MIM's pre-training fill).
        amp: autocast the forwards (off by default).
        ratios: the order grid m = int((n - 2) r).
        batch_size: masked images per forward.
    """

    grid_size: int = 14
    num_pairs: int = 50
    num_contexts: int = 50
    neighbourhood: int = 5
    seed: int = 0
    output: str = 'log_odds'
    baseline: str = 'dataset_mean'
    amp: bool = False
    ratios: Tuple[float, ...] = ORDER_RATIOS
    batch_size: int = field(default=256, compare=False)

    def __post_init__(self) -> None:
        for name in ('grid_size', 'num_pairs', 'num_contexts', 'batch_size'):
            if getattr(self, name) < 1:
                raise ValueError(f'InteractionSettings.{name} must be >= 1, got '
                                 f'{getattr(self, name)}.')
        if self.grid_size < 2:
            raise ValueError('InteractionSettings.grid_size must be >= 2 (n >= 4 patches).')
        if self.output not in OUTPUTS:
            raise ValueError(f'InteractionSettings.output must be one of {OUTPUTS}, got '
                             f'{self.output!r}.')
        if self.baseline not in BASELINES:
            raise ValueError(f'InteractionSettings.baseline must be one of {BASELINES}, got '
                             f'{self.baseline!r}.')
        neighbour_pairs(2, self.neighbourhood)  # validates the window
        interaction_orders(self.num_patches, self.ratios)

    @property
    def num_patches(self) -> int:
        """n = g^2."""
        return self.grid_size * self.grid_size

    @property
    def orders(self) -> Tuple[int, ...]:
        """The distinct orders measured."""
        return interaction_orders(self.num_patches, self.ratios)

    @property
    def pairs_per_image(self) -> int:
        """min(num_pairs, number of neighbouring pairs of the grid)."""
        return min(self.num_pairs, len(neighbour_pairs(self.grid_size, self.neighbourhood)))

    def forwards_per_image(self) -> int:
        """Forward passes per image and model: 4 x pairs x sum over orders of contexts."""
        return 4 * self.pairs_per_image * sum(
            contexts_per_pair(self.num_patches, m, self.num_contexts) for m in self.orders)

    def as_dict(self) -> dict:
        """JSON-ready settings (without ``batch_size``)."""
        settings = asdict(self)
        settings.pop('batch_size')
        settings['ratios'] = list(self.ratios)
        settings['orders'] = list(self.orders)
        settings['num_patches'] = self.num_patches
        return settings

    def fingerprint(self) -> str:
        """Hash of everything that changes the numbers (cache key)."""
        return hashlib.sha1(json.dumps(self.as_dict(), sort_keys=True).encode()).hexdigest()


@dataclass
class ImageInteractions:
    """Signed interactions ``I_m(i, j | x)`` of one image under one model.

    Args:
        orders: (O,) the orders m.
        pairs: (P, 2) the patch pairs.
        values: (O, P) float64 mean of ``delta(i, j, S)`` over the contexts.
    """

    orders: np.ndarray
    pairs: np.ndarray
    values: np.ndarray


def image_interactions(score: ScoreFn, image: torch.Tensor, label: int, image_key: str,
                       settings: InteractionSettings,
                       on_order: Optional[Callable[[int, int], None]] = None
                       ) -> ImageInteractions:
    """Estimate ``I_m(i, j | x)`` for the sampled pairs at every order of ``settings``.

    The four masked variants of every (pair, context) of an order go through ``score`` in
    batches of ``settings.batch_size``; only ``f`` is kept.

    Args:
        score: maps (B, 3, H, W) normalised inputs and the label to (B,) ``f``, e.g. a
            :class:`~a2mim_plugin.analysis.outputs.ClassifierScorer`.
        image: (3, H, W) normalised image on the model's device.
        label: ground-truth class.
        image_key: the image's content hash (seeds the draws).
        settings: the protocol.
        on_order: called after each order with (order index, forwards done).

    Returns:
        The per-image interactions.
    """
    n, g = settings.num_patches, settings.grid_size
    pairs = sample_pairs(g, settings.num_pairs, image_rng(settings.seed, image_key, PAIR_STREAM),
                         settings.neighbourhood)
    baseline = baseline_image(image, settings.baseline)
    values = np.zeros((len(settings.orders), len(pairs)), dtype=np.float64)
    for index, order in enumerate(settings.orders):
        rng = image_rng(settings.seed, image_key, CONTEXT_STREAM, order)
        contexts = np.stack([sample_contexts(n, pair, order, settings.num_contexts, rng)
                             for pair in pairs])  # (P, C, m)
        keep = torch.from_numpy(keep_masks(pairs, contexts, n).reshape(-1, n)).to(image.device)
        f = torch.empty(len(keep), dtype=torch.float64)
        for start in range(0, len(keep), settings.batch_size):
            chunk = keep[start:start + settings.batch_size]
            inputs = apply_keep_masks(image, chunk, baseline, g)
            f[start:start + len(chunk)] = score(inputs, label).double().cpu()
        f = f.view(len(pairs), contexts.shape[1], 4).numpy()  # (S, S+i, S+j, S+ij)
        values[index] = (f[..., 3] - f[..., 1] - f[..., 2] + f[..., 0]).mean(axis=1)
        if on_order is not None:
            on_order(index, len(keep))
    return ImageInteractions(np.asarray(settings.orders), pairs, values)


def interaction_strength(per_image: Sequence[ImageInteractions]) -> Tuple[np.ndarray, np.ndarray]:
    """``I_m`` and ``J_m`` from per-image interactions.

    Args:
        per_image: results of :func:`image_interactions` with the same orders.

    Returns:
        (I, J), each (O,): the mean over images and pairs of ``|I_m(i, j | x)|``, and
        ``I_m / mean_m' I_m'`` (NaN where every order is exactly 0).
    """
    if not per_image:
        raise ValueError('No images were analysed.')
    strength = np.mean([np.abs(r.values).mean(axis=1) for r in per_image], axis=0)
    total = strength.mean()
    relative = strength / total if total > 0 else np.full_like(strength, np.nan)
    return strength, relative
