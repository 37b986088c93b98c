"""EMA of the weights, updated once per optimizer step, with OpenMixup's momentum warm-up.

The official fine-tuning configs of A2MIM (OpenMixup's ``EMAHook``) keep
``ema = m * ema + (1 - m) * w`` and, with gradient accumulation, update it once per optimizer
step (``update_interval`` = the accumulation count, after the iterations that step). Most of
them also warm the keep coefficient up linearly from ``warmup_ratio * m`` to ``m`` over the
first 20 epochs (counted in dataloader iterations).

mmengine 0.10.7's ``EMAHook`` cannot express either exactly: its ``interval`` (an argument of
``ExponentialMovingAverage``) counts ``after_train_iter`` calls from 0, so with ``interval=2``
and 2 accumulation steps it averages after (0-based) iterations 2, 4, ... while the optimizer
steps after iterations 1, 3, 5, ..., and its first call only copies the weights: a run of
``S`` optimizer steps gets ``S - 1`` averages and the last step never enters the average. Its
momentum is a constant. This hook keeps
``EMAHook``'s model copy, validation/test swaps and checkpoint handling and replaces the
update rule.
"""
from typing import Optional

from mmengine.hooks import EMAHook
from mmengine.hooks.hook import DATA_BATCH
from mmengine.optim import OptimWrapper, OptimWrapperDict
from mmpretrain.registry import HOOKS


@HOOKS.register_module()
class OptimStepEMAHook(EMAHook):
    """EMA of the model weights updated right after every optimizer step.

    ``ema <- (1 - mu) * ema + mu * w`` after each iteration in which the optimizer wrapper
    stepped (``OptimWrapper.should_update()``: every ``accumulative_counts`` iterations and
    at the last iteration), so the number of averages equals the number of optimizer steps
    whatever the accumulation. The average starts from the weights the run starts with
    (after ``init_cfg`` / ``load_from``), as OpenMixup's EMA buffers do.

    Args:
        momentum (float): ``mu``, the weight of the new weights, in mmengine's convention:
            ``1 - m`` for OpenMixup's ``momentum=m`` (0.9999 -> 1e-4).
        warmup_epochs (float): Length of the linear momentum warm-up, in epochs of dataloader
            iterations (OpenMixup's ``warmup_iters`` / iterations per epoch). 0 = none.
        warmup_ratio (float): The keep coefficient ``1 - mu`` starts at
            ``warmup_ratio * (1 - momentum)`` and rises linearly to ``1 - momentum``
            (OpenMixup's ``warmup='linear'`` with ``warmup_ratio``).
        strict_load (bool): As ``EMAHook``'s, for loading ``ema_state_dict`` on resume.
    """

    def __init__(self,
                 momentum: float = 2e-4,
                 warmup_epochs: float = 0.,
                 warmup_ratio: float = 0.9,
                 strict_load: bool = False) -> None:
        if not 0. < momentum < 1.:
            raise ValueError(f'OptimStepEMAHook: momentum must be in (0, 1), got {momentum} '
                             '(mmengine convention: 1 - the official keep coefficient)')
        if warmup_epochs < 0:
            raise ValueError(f'OptimStepEMAHook: warmup_epochs must be >= 0, got {warmup_epochs}')
        if not 0. < warmup_ratio <= 1.:
            raise ValueError(f'OptimStepEMAHook: warmup_ratio must be in (0, 1], got '
                             f'{warmup_ratio}')
        super().__init__(ema_type='ExponentialMovingAverage', strict_load=strict_load,
                         momentum=momentum)
        self.momentum = momentum
        self.warmup_epochs = warmup_epochs
        self.warmup_ratio = warmup_ratio
        self.warmup_iters = 0

    def before_train(self, runner) -> None:
        super().before_train(runner)
        optim_wrapper = runner.optim_wrapper
        if isinstance(optim_wrapper, OptimWrapperDict) or not isinstance(
                optim_wrapper, OptimWrapper):
            raise TypeError('OptimStepEMAHook follows the steps of a single OptimWrapper; got '
                            f'{type(optim_wrapper).__name__} (optim_wrapper)')
        self.warmup_iters = round(self.warmup_epochs * len(runner.train_dataloader))
        if int(self.ema_model.steps) == 0:
            # Not resumed: start from the weights the run starts with (the first call of
            # update_parameters copies them).
            self.ema_model.update_parameters(self.src_model)

    def momentum_at(self, iteration: int) -> float:
        """``mu`` after dataloader iteration ``iteration`` (0-based, as ``runner.iter``)."""
        if self.warmup_iters <= 0 or iteration > self.warmup_iters:
            return self.momentum
        shortfall = (1. - iteration / self.warmup_iters) * (1. - self.warmup_ratio)
        return 1. - (1. - shortfall) * (1. - self.momentum)

    def after_train_iter(self,
                         runner,
                         batch_idx: int,
                         data_batch: DATA_BATCH = None,
                         outputs: Optional[dict] = None) -> None:
        # ``should_update`` reads the counter that ``update_params`` advanced in this
        # iteration, so it is True exactly when this iteration stepped the optimizer.
        if not runner.optim_wrapper.should_update():
            return
        self.ema_model.momentum = self.momentum_at(runner.iter)
        self.ema_model.update_parameters(self.src_model)
