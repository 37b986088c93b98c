"""Toy classifiers whose patch interactions are known, and an independent direct computation of
the multi-order interaction by enumerating every context."""
import itertools
from typing import Dict, Sequence, Tuple

import numpy as np
import torch
from mmengine.model import BaseModel
from mmpretrain.models import ClsDataPreprocessor

from a2mim_plugin.analysis import LabelledImage

MEAN = (123.675, 116.28, 103.53)
STD = (58.395, 57.12, 57.375)


class PatchGame(BaseModel):
    """A classifier (mmengine ``BaseModel``, ``mode='tensor'`` -> logits) on a g x g grid.

    ``cells`` are the per-patch channel means of the normalised input, (B, 3, n); ``present``
    says which patches differ from the dataset-mean baseline (0 after normalisation).

    Args:
        grid_size: g.
        game: 'mlp' (a fixed random tanh MLP of all cells, 3 classes: generic interactions),
            'additive' (a sum of per-patch nonlinear terms), 'product' (1[p] * 1[q] for the
            patches ``pair``), 'all' (1 when every patch is present).
        pair: the two patches of the 'product' game.
    """

    def __init__(self, grid_size: int, game: str, pair: Tuple[int, int] = (0, 1)) -> None:
        super().__init__(data_preprocessor=ClsDataPreprocessor(mean=MEAN, std=STD, to_rgb=True))
        self.grid_size, self.game, self.pair = grid_size, game, pair
        n = grid_size * grid_size
        generator = torch.Generator().manual_seed(7)
        self.w1 = torch.nn.Parameter(torch.randn(3 * n, 16, generator=generator))
        self.w2 = torch.nn.Parameter(torch.randn(16, 3, generator=generator))
        self.wp = torch.nn.Parameter(torch.randn(3, n, generator=generator))
        self.forwards = 0

    def extra_repr(self) -> str:
        return f'grid_size={self.grid_size}, game={self.game!r}, pair={self.pair}'

    def cells(self, inputs: torch.Tensor) -> torch.Tensor:
        pooled = torch.nn.functional.adaptive_avg_pool2d(inputs, self.grid_size)
        return pooled.flatten(2)  # (B, 3, n)

    def forward(self, inputs: torch.Tensor, data_samples=None, mode: str = 'tensor'):
        self.forwards += len(inputs)
        cells = self.cells(inputs)
        present = (cells.abs().sum(1) > 0).float()  # (B, n)
        if self.game == 'mlp':
            return torch.tanh(cells.flatten(1) @ self.w1) @ self.w2
        if self.game == 'additive':
            score = (torch.sin(cells * self.wp) + cells ** 2).sum(dim=(1, 2))
        elif self.game == 'product':
            score = present[:, self.pair[0]] * present[:, self.pair[1]]
        elif self.game == 'all':
            score = present.prod(dim=1)
        else:
            raise ValueError(self.game)
        return torch.stack([score, torch.zeros_like(score)], dim=1)


def toy_images(count: int, size: int, num_classes: int = 3, seed: int = 0):
    """Random BGR uint8 images (as LoadImageFromFile packs them) with labels."""
    rng = np.random.default_rng(seed)
    return [LabelledImage(f'toy_{k}', torch.from_numpy(
        rng.integers(0, 256, (3, size, size), dtype=np.uint8)), int(k % num_classes))
        for k in range(count)]


def normalise(image: LabelledImage) -> np.ndarray:
    """(3, H, W) float normalised RGB, computed without the plugin."""
    rgb = image.image.numpy()[::-1].astype(np.float64)
    return ((rgb - np.asarray(MEAN)[:, None, None]) / np.asarray(STD)[:, None, None])


def log_odds(logits: np.ndarray, label: int) -> np.ndarray:
    """log(p_y / (1 - p_y)) from softmax probabilities (float64)."""
    z = logits - logits.max(axis=1, keepdims=True)
    p = np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)
    return np.log(p[:, label]) - np.log1p(-p[:, label])


def direct_interactions(model: PatchGame, image: LabelledImage, grid_size: int,
                        pairs: Sequence[Tuple[int, int]], orders: Sequence[int],
                        output: str, baseline: str) -> Dict[Tuple[int, int], np.ndarray]:
    """I_m(i, j | x) by brute force over every context S of size m (numpy, float64 masks)."""
    x = normalise(image)
    fill = np.zeros((3, 1, 1)) if baseline == 'dataset_mean' else x.mean(axis=(1, 2),
                                                                         keepdims=True)
    side = x.shape[1] // grid_size
    n = grid_size * grid_size

    def masked(kept) -> np.ndarray:
        keep = np.zeros(n)
        keep[list(kept)] = 1.
        pixels = np.kron(keep.reshape(grid_size, grid_size), np.ones((side, side)))
        return fill + (x - fill) * pixels

    def f(batch: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            logits = model(torch.from_numpy(batch).float(), mode='tensor').double().numpy()
        return log_odds(logits, image.label) if output == 'log_odds' else logits[:, image.label]

    result = {}
    for i, j in pairs:
        others = [k for k in range(n) if k not in (i, j)]
        per_order = []
        for m in orders:  # every context of size m
            batch = []
            for context in itertools.combinations(others, m):
                batch += [masked(context), masked(context + (i, )), masked(context + (j, )),
                          masked(context + (i, j))]
            values = f(np.stack(batch)).reshape(-1, 4)
            per_order.append((values[:, 3] - values[:, 1] - values[:, 2] + values[:, 0]).mean())
        result[(int(i), int(j))] = np.asarray(per_order)
    return result
