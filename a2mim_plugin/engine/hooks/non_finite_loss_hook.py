"""Stop a diverging pre-training run before it writes NaNs into the weights or checkpoints."""
import os.path as osp
from typing import Callable, Dict, Iterable, List, Optional, Tuple

import torch
from mmengine.dist import all_reduce, get_world_size
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper
from mmengine.optim import AmpOptimWrapper, OptimWrapper, OptimWrapperDict
from mmpretrain.registry import HOOKS


class NonFiniteLossError(RuntimeError):
    """A loss term or the gradient norm is NaN or infinite."""


def last_good_checkpoint(work_dir: str) -> Optional[str]:
    """The checkpoint ``work_dir/last_checkpoint`` names, if it exists."""
    record = osp.join(work_dir, 'last_checkpoint')
    if not osp.isfile(record):
        return None
    with open(record) as f:
        path = f.read().strip()
    return path if path and osp.isfile(path) else None


def first_non_finite(values: Dict[str, torch.Tensor]) -> Optional[Tuple[str, str]]:
    """The first (name, value as text) of ``values`` that is not finite on some rank, or None
    (one device sync; under distributed training every rank gets the same answer)."""
    names = [name for name, value in values.items() if isinstance(value, torch.Tensor)]
    if not names:
        return None
    stacked = torch.stack([values[name].detach().float().reshape(()) for name in names])
    local = finite = torch.isfinite(stacked)
    if get_world_size() > 1:  # every rank stops, or none (a lone rank would hang the others)
        bad = (~finite).float()
        all_reduce(bad)
        finite = bad == 0
    if bool(finite.all()):
        return None
    index = int((~finite).nonzero()[0])
    value = str(float(stacked[index]))
    return names[index], value if not local[index] else f'{value} here, not finite on another rank'


def grad_norm(params: Iterable[torch.nn.Parameter]) -> Optional[torch.Tensor]:
    """Total L2 norm of the gradients of ``params`` (None when none has a gradient)."""
    grads = [p.grad for p in params if p.grad is not None]
    return torch.nn.utils.get_total_norm(grads) if grads else None


@HOOKS.register_module()
class NonFiniteLossHook(Hook):
    """Stop the run as soon as a loss term or the gradient norm is not finite.

    Long A2MIM runs (800 epochs for ViTs) can diverge; mmengine would keep stepping, turn every
    weight into NaN and overwrite the good checkpoints. This hook checks, per instance of this
    run only:

    * every loss term, after ``parse_losses`` and before ``optim_wrapper.update_params``
      (so neither backward nor the optimizer step run on a NaN loss);
    * the gradient norm, right before ``optim_wrapper.step`` (also with gradient
      accumulation). Under ``AmpOptimWrapper`` the loss scaler already skips fp16 overflow
      steps (and lowers the scale), so non-finite gradients there are not failures.

    It raises :class:`NonFiniteLossError` naming the iteration, the term and the last good
    checkpoint (kept: no checkpoint is saved after the bad iteration); ``--resume`` continues
    from it. The checks only read values, so the numbers of a run do not change.

    Args:
        check_grad_norm: also check the gradient norm before each (non-AMP) optimizer step.
    """

    priority = 'VERY_HIGH'

    def __init__(self, check_grad_norm: bool = True) -> None:
        self.check_grad_norm = check_grad_norm
        self._patched: List[Tuple[object, str]] = []

    def before_train(self, runner) -> None:
        model = runner.model.module if is_model_wrapper(runner.model) else runner.model
        self._patch(model, 'parse_losses', self._checked_parse_losses(runner, model.parse_losses))
        if not self.check_grad_norm:
            return
        wrappers = runner.optim_wrapper.optim_wrappers.values() \
            if isinstance(runner.optim_wrapper, OptimWrapperDict) else [runner.optim_wrapper]
        for wrapper in wrappers:
            if isinstance(wrapper, OptimWrapper) and not isinstance(wrapper, AmpOptimWrapper):
                self._patch(wrapper, 'step', self._checked_step(runner, wrapper, wrapper.step))

    def after_train(self, runner) -> None:
        for owner, name in self._patched:
            vars(owner).pop(name, None)  # back to the class method
        self._patched.clear()

    # ----------------------------------------------------------------------------------------
    def _patch(self, owner: object, name: str, replacement: Callable) -> None:
        setattr(owner, name, replacement)  # an instance attribute: this run only
        self._patched.append((owner, name))

    def _checked_parse_losses(self, runner, parse_losses: Callable) -> Callable:

        def parse(losses: Dict[str, torch.Tensor]):
            loss, log_vars = parse_losses(losses)
            terms = {k: v for k, v in log_vars.items() if k != 'loss'}  # the culprit first
            bad = first_non_finite(dict(terms, loss=loss))
            if bad is not None:
                self._stop(runner, f'the loss term {bad[0]}={bad[1]}', 'before the backward pass')
            return loss, log_vars

        return parse

    def _checked_step(self, runner, wrapper: OptimWrapper, step: Callable) -> Callable:

        def checked_step(**kwargs) -> None:
            params = [p for group in wrapper.optimizer.param_groups for p in group['params']]
            norm = grad_norm(params)
            bad = None if norm is None else first_non_finite(dict(grad_norm=norm))
            if bad is not None:
                self._stop(runner, f'the gradient norm ({bad[1]})', 'before the optimizer step')
            step(**kwargs)

        return checked_step

    @staticmethod
    def _stop(runner, what: str, where: str) -> None:
        ckpt = last_good_checkpoint(runner.work_dir)
        resume = (f'The last good checkpoint is {ckpt}; resume from it with --resume {ckpt}'
                  if ckpt else 'No checkpoint was saved yet')
        raise NonFiniteLossError(
            f'NonFiniteLossHook: {what} is not finite at iteration {runner.iter + 1} (epoch '
            f'{runner.epoch + 1}); stopped {where}, so the weights are still finite and no '
            f'checkpoint was written after iteration {runner.iter}. {resume} (lower '
            'optim_wrapper.optimizer.lr or set optim_wrapper.clip_grad=dict(max_norm=...) if '
            'it diverges again).')


__all__ = ['NonFiniteLossError', 'NonFiniteLossHook', 'first_non_finite', 'grad_norm',
           'last_good_checkpoint']
