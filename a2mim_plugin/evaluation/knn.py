"""Weighted k-nearest-neighbour classification of L2-normalised features.

The protocol of Wu et al. (CVPR 2018) as used by DINO (Caron et al., ICCV 2021): for each query
the ``k`` most cosine-similar bank features vote for their labels with weight
``exp(similarity / temperature)``; the class with the largest summed weight is the top-1
prediction. Queries are processed in chunks against chunks of the bank, keeping a running
top-k, so no query x bank similarity matrix is ever built.
"""
from dataclasses import dataclass, field
from typing import Dict, Sequence, Tuple

import torch


@dataclass
class KNNResult:
    """Accuracies (percent) and predictions of one k-NN evaluation.

    Attributes:
        top1: ``{k: top-1 accuracy}``.
        top5: ``{k: top-5 accuracy}`` (top-``num_classes`` when there are fewer than 5).
        predictions: ``{k: (Q, min(5, C)) int64}`` classes by decreasing vote per query.
        num_bank: bank size.
        num_queries: number of queries.
    """
    top1: Dict[int, float] = field(default_factory=dict)
    top5: Dict[int, float] = field(default_factory=dict)
    predictions: Dict[int, torch.Tensor] = field(default_factory=dict)
    num_bank: int = 0
    num_queries: int = 0

    def metrics(self, prefix: str = 'knn') -> Dict[str, float]:
        """Flat metric names: ``knn/top1`` and ``knn/top5`` for the first k, then
        ``knn/top1_k{k}`` / ``knn/top5_k{k}`` for the others."""
        out = {}
        for i, k in enumerate(self.top1):
            suffix = '' if i == 0 else f'_k{k}'
            out[f'{prefix}/top1{suffix}'] = self.top1[k]
            out[f'{prefix}/top5{suffix}'] = self.top5[k]
        return out


def check_knn_args(ks: Sequence[int], temperature: float) -> Tuple[int, ...]:
    """Validated, de-duplicated ``ks`` in the given order."""
    ks = tuple(dict.fromkeys(int(k) for k in ks))
    if not ks or any(k < 1 for k in ks):
        raise ValueError(f'k-NN: ks must be positive integers, got {ks!r}.')
    if not temperature > 0:
        raise ValueError(f'k-NN: temperature must be > 0, got {temperature!r}.')
    return ks


def nearest_neighbours(queries: torch.Tensor, bank: torch.Tensor, k: int,
                       bank_chunk: int = 65536) -> Tuple[torch.Tensor, torch.Tensor]:
    """The ``k`` most similar bank rows of each query, by inner product.

    Args:
        queries: (Q, D) features (float32 or the bank's dtype).
        bank: (N, D) features; fp16 chunks are cast to the queries' dtype.
        k: neighbours per query (clipped to N).
        bank_chunk: bank rows per similarity block (the block is Q x bank_chunk).

    Returns:
        ``(similarities, indices)``, both (Q, min(k, N)), sorted by decreasing similarity.
    """
    k = min(k, bank.shape[0])
    best_sim = queries.new_full((queries.shape[0], 0), float('-inf'))
    best_idx = torch.zeros((queries.shape[0], 0), dtype=torch.long, device=queries.device)
    for start in range(0, bank.shape[0], bank_chunk):
        block = bank[start:start + bank_chunk].to(queries.dtype)
        sim = queries @ block.T  # (Q, chunk)
        top_sim, top_idx = sim.topk(min(k, sim.shape[1]), dim=1)
        best_sim = torch.cat([best_sim, top_sim], dim=1)
        best_idx = torch.cat([best_idx, top_idx + start], dim=1)
        best_sim, order = best_sim.topk(min(k, best_sim.shape[1]), dim=1)
        best_idx = best_idx.gather(1, order)
    return best_sim, best_idx


def knn_classify(bank: torch.Tensor, bank_labels: torch.Tensor, queries: torch.Tensor,
                 ks: Sequence[int] = (20, ), temperature: float = 0.07,
                 num_classes: int = None, query_chunk: int = 1024,
                 bank_chunk: int = 65536) -> Dict[int, torch.Tensor]:
    """Weighted k-NN predictions for several ``k`` in one pass over the bank.

    Args:
        bank: (N, D) L2-normalised features (any float dtype).
        bank_labels: (N, ) int64 labels in ``[0, num_classes)``.
        queries: (Q, D) L2-normalised features.
        ks: the numbers of neighbours; one neighbour search with ``max(ks)`` serves all.
        temperature: the vote weight is ``exp(similarity / temperature)``.
        num_classes: defaults to ``bank_labels.max() + 1``.
        query_chunk: queries per block.
        bank_chunk: bank rows per block.

    Returns:
        ``{k: (Q, min(5, C)) int64}``: classes by decreasing summed vote.
    """
    ks = check_knn_args(ks, temperature)
    if bank.shape[0] == 0:
        raise ValueError('k-NN: the bank is empty.')
    if bank.shape[0] != bank_labels.shape[0]:
        raise ValueError(f'k-NN: {bank.shape[0]} bank features but {bank_labels.shape[0]} '
                         'labels.')
    if num_classes is None:
        num_classes = int(bank_labels.max()) + 1
    bank_labels = bank_labels.to(bank.device)
    top = min(5, num_classes)
    work_dtype = torch.float32 if queries.dtype == torch.float16 and \
        queries.device.type == 'cpu' else queries.dtype
    out = {k: [] for k in ks}
    for start in range(0, queries.shape[0], query_chunk):
        q = queries[start:start + query_chunk].to(work_dtype)
        sim, idx = nearest_neighbours(q, bank, max(ks), bank_chunk)  # sorted, (q, kmax)
        labels = bank_labels[idx]  # (q, kmax)
        weights = (sim.float() / temperature).exp()
        for k in ks:
            votes = torch.zeros(q.shape[0], num_classes, device=q.device)
            votes.scatter_add_(1, labels[:, :k], weights[:, :k])
            out[k].append(votes.topk(top, dim=1).indices)
    empty = torch.zeros((0, top), dtype=torch.long, device=queries.device)
    return {k: torch.cat(v) if v else empty for k, v in out.items()}


def accuracies(predictions: torch.Tensor, labels: torch.Tensor) -> Tuple[float, float]:
    """Top-1 and top-5 accuracy in percent of (Q, T) predictions against (Q, ) labels."""
    if labels.numel() == 0:
        raise ValueError('k-NN: no queries to score.')
    hits = predictions == labels.to(predictions.device)[:, None]
    top1 = hits[:, 0].float().mean().item() * 100.
    top5 = hits[:, :5].any(dim=1).float().mean().item() * 100.
    return top1, top5


def knn_evaluate(bank: torch.Tensor, bank_labels: torch.Tensor, queries: torch.Tensor,
                 query_labels: torch.Tensor, ks: Sequence[int] = (20, ),
                 temperature: float = 0.07, num_classes: int = None,
                 **chunks: int) -> KNNResult:
    """:func:`knn_classify` scored against ``query_labels`` (top-1 and top-5 per k)."""
    if num_classes is None:
        num_classes = int(max(bank_labels.max(), query_labels.max())) + 1
    preds = knn_classify(bank, bank_labels, queries, ks, temperature, num_classes, **chunks)
    result = KNNResult(num_bank=bank.shape[0], num_queries=queries.shape[0])
    for k, pred in preds.items():
        result.top1[k], result.top5[k] = accuracies(pred, query_labels)
        result.predictions[k] = pred
    return result
