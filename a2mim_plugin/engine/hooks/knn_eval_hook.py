"""Weighted k-NN accuracy of the plain backbone during pre-training (a cheap learning signal).

MMPretrain 1.2.0 has no k-NN evaluation and mmengine no hook for one. :class:`KNNEvalHook`
extracts plain-backbone features (no mask, no fill) of a labelled bank and query split every
``interval`` epochs (or iterations) and after the last one, classifies the queries with the
weighted k-NN vote of Wu et al. (CVPR 2018) as in DINO, and logs ``knn/top1`` / ``knn/top5``.
"""
import time
from typing import Any, Dict, Optional, Sequence

import torch
from mmengine.dist import is_main_process
from mmengine.hooks import Hook
from mmpretrain.registry import HOOKS

from ...evaluation import build_split, eval_pipeline, knn_eval_model

DTYPES = {'float16': torch.float16, 'float32': torch.float32}


class KNNDataError(ValueError):
    """The bank or query split of :class:`KNNEvalHook` cannot be built."""


@HOOKS.register_module()
class KNNEvalHook(Hook):
    """k-NN top-1 / top-5 of the plain backbone every ``interval`` epochs or iterations.

    Both splits are built (and checked) before the run starts, so a data root without them
    fails at once with the config key to fix. The evaluation runs in eval mode without
    gradient and restores the train mode and every global RNG stream, so a run with the hook
    ends with the same weights as one without. Metrics go to the message hub (``knn/top1``,
    ``knn/top5`` for the first k, ``knn/top1_k{k}`` ... for the others), the text log and the
    visualizer backends (step = iterations done), and into the next checkpoint's
    ``meta['knn']``.

    Args:
        bank: dataset config of the labelled split that votes (e.g. ImageNet train); without
            ``data_root`` it takes the train dataloader's; without ``pipeline``, the test
            pipeline at ``crop_size``.
        query: dataset config of the labelled split that is classified (e.g. ImageNet val).
        bank_per_class: a fixed, seeded subset of at most this many bank images per class
            (None: all of them).
        query_per_class: the same for the queries (None: all of them).
        seed: seed of the per-class subsets.
        interval: evaluate every ``interval`` epochs (``by_epoch``) or iterations.
        by_epoch: count epochs (True) or iterations.
        before_train: also evaluate before the first iteration (a fresh run only).
        ks: numbers of neighbours, the first one is ``knn/top1``.
        temperature: vote weight ``exp(similarity / temperature)``.
        pool: 'auto' (the class token where the backbone has one, else the spatial mean of its
            last output), 'avg' or 'cls'.
        crop_size: side of the centre crop of the default pipeline.
        batch_size: images per forward and process.
        num_workers: data-loading workers per process.
        feature_dtype: 'float16' or 'float32' storage of the bank.
        query_chunk: queries per similarity block.
        bank_chunk: bank rows per similarity block.
        enabled: False turns the hook off (it logs one line saying so and builds nothing).
            This is the one-line switch (``default_hooks.knn_eval.enabled=False``): mmengine
            accepts ``None`` only for its own default hooks, so ``knn_eval=None`` is refused.
    """

    priority = 'LOW'  # before RNGStateHook (80) and the checkpoint hook (VERY_LOW)

    def __init__(self, bank: dict, query: dict, bank_per_class: Optional[int] = None,
                 query_per_class: Optional[int] = None, seed: int = 0, interval: int = 1,
                 by_epoch: bool = True, before_train: bool = False, ks: Sequence[int] = (20, ),
                 temperature: float = 0.07, pool: str = 'auto', crop_size: int = 224,
                 batch_size: int = 64, num_workers: int = 4, feature_dtype: str = 'float16',
                 query_chunk: int = 1024, bank_chunk: int = 65536, enabled: bool = True) -> None:
        if interval < 1:
            raise ValueError(f'KNNEvalHook interval must be >= 1, got {interval!r}.')
        if feature_dtype not in DTYPES:
            raise ValueError(f'KNNEvalHook feature_dtype must be one of {sorted(DTYPES)}, '
                             f'got {feature_dtype!r}.')
        self.split_cfgs = dict(bank=dict(bank), query=dict(query))
        self.per_class = dict(bank=bank_per_class, query=query_per_class)
        self.seed = seed
        self.interval = interval
        self.by_epoch = by_epoch
        self.eval_before_train = before_train
        self.ks = tuple(ks)
        self.temperature = temperature
        self.pool = pool
        self.crop_size = crop_size
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.dtype = DTYPES[feature_dtype]
        self.chunks = dict(query_chunk=query_chunk, bank_chunk=bank_chunk)
        self.enabled = enabled
        self.splits: Dict[str, Any] = {}
        self.last: Optional[dict] = None

    # ------------------------------------------------------------------------------------
    def before_run(self, runner) -> None:
        """Build both splits now: a missing split is a named error before any training."""
        key = config_key(runner)
        if not self.enabled:
            runner.logger.info(f'KNNEvalHook is off ({key}.enabled=False).')
            return
        train_root = runner.cfg.get('train_dataloader', {}).get('dataset', {}).get('data_root')
        for name, cfg in self.split_cfgs.items():
            cfg = dict(cfg)
            cfg.setdefault('data_root', train_root)
            cfg.setdefault('pipeline', eval_pipeline(self.crop_size))
            where = (f"{cfg.get('type')} split {cfg.get('split', cfg.get('data_prefix', ''))!r} "
                     f"under {cfg.get('data_root')!r}")
            try:
                self.splits[name] = build_split(cfg, self.per_class[name], self.seed)
            except Exception as error:
                raise KNNDataError(
                    f'KNNEvalHook: the k-NN {name} split ({where}) cannot be built: '
                    f'{type(error).__name__}: {error}. Point {key}.{name}.data_root (or the '
                    f"train dataloader's data_root it defaults to) at a folder with labelled "
                    f'train/ and val/ splits (ImageNet layout, or meta/train.txt and '
                    f'meta/val.txt), or turn the hook off with {key}.enabled=False.') from error
        runner.logger.info(
            f"KNNEvalHook: bank {len(self.splits['bank'].indices)} images, queries "
            f"{len(self.splits['query'].indices)}, k={list(self.ks)}, T={self.temperature}, "
            f"every {self.interval} {'epoch(s)' if self.by_epoch else 'iteration(s)'}.")

    def before_train(self, runner) -> None:
        if self.enabled and self.eval_before_train and runner.iter == 0:
            self.evaluate(runner, epoch=0, step=0)

    def after_train_epoch(self, runner) -> None:
        if self.enabled and self.by_epoch and (self.every_n_epochs(runner, self.interval)
                              or self.is_last_train_epoch(runner)):
            self.evaluate(runner, epoch=runner.epoch + 1, step=runner.iter)

    def after_train_iter(self, runner, batch_idx: int, data_batch=None, outputs=None) -> None:
        if self.enabled and not self.by_epoch and (self.every_n_train_iters(runner, self.interval)
                                  or self.is_last_train_iter(runner)):
            self.evaluate(runner, epoch=runner.epoch, step=runner.iter + 1)

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        if self.last is not None:
            checkpoint.setdefault('meta', {})['knn'] = dict(self.last)

    # ------------------------------------------------------------------------------------
    def evaluate(self, runner, epoch: int, step: int) -> Dict[str, float]:
        """One k-NN evaluation of ``runner.model``; returns the logged metrics.

        Args:
            runner: the runner.
            epoch: epochs completed (for the log and the checkpoint meta).
            step: iterations completed (the visualizer step).
        """
        start = time.perf_counter()
        result = knn_eval_model(runner.model, self.splits['bank'], self.splits['query'],
                                self.ks, self.temperature, self.pool, self.batch_size,
                                self.num_workers, self.dtype, **self.chunks)
        metrics = result.metrics()
        for name, value in metrics.items():
            runner.message_hub.update_scalar(name, value)
        runner.visualizer.add_scalars(metrics, step=step)
        self.last = dict(metrics, epoch=epoch, iter=step)
        if is_main_process():
            text = ', '.join(f'{name}: {value:.2f}' for name, value in metrics.items())
            runner.logger.info(
                f'k-NN (epoch {epoch}, iter {step}; bank {result.num_bank}, '
                f'{result.num_queries} queries, {time.perf_counter() - start:.1f} s): {text}')
        return metrics


def config_key(runner) -> str:
    """Where this hook sits in the run's config (for error messages)."""
    for name, cfg in (runner.cfg.get('default_hooks') or {}).items():
        if isinstance(cfg, dict) and str(cfg.get('type', '')).endswith('KNNEvalHook'):
            return f'default_hooks.{name}'
    for i, cfg in enumerate(runner.cfg.get('custom_hooks') or []):
        if isinstance(cfg, dict) and str(cfg.get('type', '')).endswith('KNNEvalHook'):
            return f'custom_hooks[{i}]'
    return 'the KNNEvalHook config'
