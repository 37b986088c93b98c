"""Say at the start of training when a run does not train with the batch its recipe was written for.

A recipe's learning rate belongs to one total batch per optimizer step (GPUs x batch per GPU x
gradient-accumulation steps). Launching a config on another number of GPUs changes that total
without changing the learning rate, and nothing in mmengine says so. mmengine's
``--auto-scale-lr`` rescales the learning rate linearly, but it counts GPUs x batch per GPU
against ``auto_scale_lr.base_batch_size`` and ignores ``accumulative_counts``.
"""
import logging
from dataclasses import dataclass
from typing import Optional, Tuple

from mmengine.hooks import Hook
from mmengine.logging import print_log
from mmpretrain.registry import HOOKS

CONFIG_KEY = 'default_hooks.total_batch_check.total_batch'


@dataclass(frozen=True)
class LaunchLayout:
    """What a run trains with, and what its recipe was written for."""

    recipe_total: int  # images per optimizer step the learning rate was written for
    world_size: int
    batch_size: int  # per process
    accumulative_counts: int
    lr: float  # peak learning rate the run uses (after any --auto-scale-lr)
    auto_scale_lr: bool  # --auto-scale-lr on
    base_batch_size: Optional[int]  # auto_scale_lr.base_batch_size, None if absent

    @property
    def total(self) -> int:
        return self.world_size * self.batch_size * self.accumulative_counts

    @property
    def per_process_total(self) -> int:
        return self.batch_size * self.accumulative_counts

    def mmengine_scale(self) -> Optional[float]:
        """The factor ``--auto-scale-lr`` applies (or would apply): GPUs x batch / base."""
        if not self.base_batch_size:
            return None
        return self.world_size * self.batch_size / self.base_batch_size


def _describe(layout: LaunchLayout) -> str:
    return (f'{layout.world_size} process(es) x {layout.batch_size} images x '
            f'{layout.accumulative_counts} accumulation step(s) = {layout.total}')


def _matching_processes(layout: LaunchLayout) -> str:
    n, rest = divmod(layout.recipe_total, layout.per_process_total)
    if n and not rest:
        return f'launch {n} process(es) (GPUs) to train the recipe as written'
    return (f'no whole number of processes reaches {layout.recipe_total} with '
            f'{layout.batch_size} images x {layout.accumulative_counts} accumulation step(s) '
            'per process: set train_dataloader.batch_size or optim_wrapper.accumulative_counts '
            'so that processes x batch x accumulation equals it')


def check_launch_layout(layout: LaunchLayout) -> Tuple[int, str]:
    """The log level and message for ``layout``: INFO if the run trains the recipe's batch
    (or ``--auto-scale-lr`` scaled the learning rate for the run's batch), WARNING if not."""
    ratio = layout.total / layout.recipe_total
    scale = layout.mmengine_scale()
    if not layout.auto_scale_lr:
        if layout.total == layout.recipe_total:
            return logging.INFO, (
                f'Launch layout: {_describe(layout)} images per optimizer step, the total '
                f'batch this recipe was written for; learning rate {layout.lr:.4g}.')
        if scale is None:
            auto = ('add --auto-scale-lr (after setting auto_scale_lr.base_batch_size in the '
                    'config) to scale the learning rate for this batch')
        else:
            auto = (f'add --auto-scale-lr to keep this batch and scale the learning rate '
                    f'linearly to {layout.lr * scale:.4g}')
            if abs(scale - ratio) > 1e-9 * ratio:
                auto += (f' (mmengine scales by processes x batch / auto_scale_lr.'
                         f'base_batch_size = {scale:.4g} and ignores accumulative_counts; the '
                         f'total batch changed by {ratio:.4g})')
        return logging.WARNING, (
            f'Launch layout differs from the recipe: this config was written for a total batch '
            f'of {layout.recipe_total} images per optimizer step ({CONFIG_KEY}), this run has '
            f'{_describe(layout)}, and --auto-scale-lr is off, so the run uses the recipe\'s '
            f'learning rate {layout.lr:.4g} with {ratio:.4g} x its batch. Fix: either '
            f'{_matching_processes(layout)}, or {auto}.')
    # --auto-scale-lr is on: mmengine has already multiplied the learning rate by `scale`.
    if scale is not None and abs(scale - ratio) > 1e-9 * ratio:
        recipe_lr = layout.lr / scale
        accum, rest = divmod(layout.recipe_total, layout.base_batch_size)
        keep_accum = (f'set optim_wrapper.accumulative_counts={accum} (the recipe\'s: '
                      f'auto_scale_lr.base_batch_size x {accum} = {layout.recipe_total}), so '
                      'that the scaling follows the total batch' if accum and not rest else
                      'make auto_scale_lr.base_batch_size x the recipe\'s accumulation equal '
                      'the recipe\'s total batch')
        return logging.WARNING, (
            f'Launch layout: this config was written for a total batch of '
            f'{layout.recipe_total} images per optimizer step ({CONFIG_KEY}) and this run has '
            f'{_describe(layout)}; --auto-scale-lr scaled the learning rate by processes x '
            f'batch / auto_scale_lr.base_batch_size = {scale:.4g} (mmengine ignores '
            f'accumulative_counts) to {layout.lr:.4g}, while the total batch changed by '
            f'{ratio:.4g} and the linear rule gives {recipe_lr * ratio:.4g}. Fix: either '
            f'{keep_accum}, or turn --auto-scale-lr off and {_matching_processes(layout)}.')
    return logging.INFO, (
        f'Launch layout: {_describe(layout)} images per optimizer step (recipe: '
        f'{layout.recipe_total}); --auto-scale-lr set the learning rate to {layout.lr:.4g}.')


@HOOKS.register_module()
class TotalBatchCheckHook(Hook):
    """Compare the run's total batch with the recipe's before the first iteration.

    Logs one line on rank 0: INFO when the run trains the total batch the recipe's learning
    rate was written for, a WARNING naming both totals, the learning rate the run uses and
    the two fixes (the matching number of GPUs, or ``--auto-scale-lr``) when it does not, and
    a WARNING when ``--auto-scale-lr`` scaled the learning rate by another factor than the
    total batch changed (mmengine ignores gradient accumulation).

    Args:
        total_batch (int): The recipe's images per optimizer step (GPUs x batch per GPU x
            accumulation steps of the official run).
    """

    priority = 'VERY_LOW'

    def __init__(self, total_batch: int) -> None:
        if isinstance(total_batch, bool) or not isinstance(total_batch, int) or \
                total_batch <= 0:
            raise ValueError(f'{CONFIG_KEY} must be a positive int, got {total_batch!r}')
        self.total_batch = total_batch

    def before_train(self, runner) -> None:
        level, message = check_launch_layout(self.layout(runner))
        print_log(message, logger='current', level=level)

    def layout(self, runner) -> LaunchLayout:
        """The run's :class:`LaunchLayout` from the built runner."""
        optim_wrapper = runner.optim_wrapper
        groups = optim_wrapper.optimizer.param_groups
        # Schedulers store the (auto-scaled) base value as ``initial_lr``; the warm-up has
        # already lowered ``lr`` itself.
        lr = max(g.get('initial_lr', g['lr']) for g in groups)
        auto = runner.auto_scale_lr or {}
        return LaunchLayout(
            recipe_total=self.total_batch,
            world_size=runner.world_size,
            batch_size=runner.train_dataloader.batch_size,
            # mmengine 0.10.7 keeps the count only in this attribute.
            accumulative_counts=optim_wrapper._accumulative_counts,
            lr=lr,
            auto_scale_lr=bool(auto.get('enable', False)),
            base_batch_size=auto.get('base_batch_size'))
