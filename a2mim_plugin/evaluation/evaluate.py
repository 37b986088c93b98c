"""k-NN evaluation of a model's plain backbone on a labelled bank and query split."""
from typing import Callable, Optional, Sequence

import torch
from torch import nn

from .data import LabelledSplit
from .features import extract_features, gather_rows
from .knn import KNNResult, accuracies, check_knn_args, knn_classify


def knn_eval_model(model: nn.Module, bank: LabelledSplit, query: LabelledSplit,
                   ks: Sequence[int] = (20, ), temperature: float = 0.07, pool: str = 'auto',
                   batch_size: int = 64, num_workers: int = 0,
                   dtype: torch.dtype = torch.float16, query_chunk: int = 1024,
                   bank_chunk: int = 65536,
                   progress: Optional[Callable[[int], None]] = None) -> KNNResult:
    """Extract, classify, score; the same result for any number of processes.

    The bank is extracted in shards and gathered on every rank; each rank extracts and
    classifies its own shard of the queries, and the predictions are gathered for scoring.
    Forwards per evaluation: ``len(bank.indices) + len(query.indices)``; bank memory on every
    rank: ``len(bank.indices) x C x dtype size``.

    Args:
        model: algorithm or classifier (``data_preprocessor`` + ``backbone``), possibly
            wrapped; it is left in the mode it had and the global RNG streams are untouched.
        bank: the labelled split whose features vote.
        query: the labelled split that is classified.
        ks: numbers of neighbours (all from one neighbour search).
        temperature: vote weight ``exp(similarity / temperature)``.
        pool: 'auto' (class token where the backbone has one, else average), 'avg' or 'cls'.
        batch_size: images per forward.
        num_workers: data-loading workers.
        dtype: storage dtype of the bank features.
        query_chunk: queries per similarity block.
        bank_chunk: bank rows per similarity block.
        progress: called with the images of each finished batch.
    """
    ks = check_knn_args(ks, temperature)
    num_classes = max(bank.num_classes, query.num_classes)
    bank_feats, bank_labels = extract_features(model, bank.dataset, bank.indices, batch_size,
                                               num_workers, pool, dtype, progress)
    query_feats, query_labels = extract_features(model, query.dataset, query.indices,
                                                 batch_size, num_workers, pool, dtype,
                                                 progress, gather=False)
    local = knn_classify(bank_feats, bank_labels, query_feats, ks, temperature, num_classes,
                         query_chunk=query_chunk, bank_chunk=bank_chunk)
    labels = gather_rows(query_labels)
    result = KNNResult(num_bank=bank_feats.shape[0], num_queries=labels.shape[0])
    for k in ks:
        pred = gather_rows(local[k])
        result.top1[k], result.top5[k] = accuracies(pred, labels)
        result.predictions[k] = pred.cpu()
    return result
