"""The two hooks that keep a run on its recipe: ``OptimStepEMAHook`` and ``TotalBatchCheckHook``.

Both run inside mmengine's real ``Runner`` on a toy regression model (one linear layer, SGD),
so what is checked is what a training run does: when the EMA is updated relative to the
optimizer's real steps (counted with torch's own optimizer step hook), the EMA weights against
OpenMixup's update rule written out here, and the launch-layout message read back from the
run's log file. The two-process launch is in ``tests/test_distributed/test_launch_layout.py``.
"""
import copy
import logging
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import pytest
import torch
from mmengine.hooks import EMAHook, Hook
from mmengine.model import BaseModel
from mmengine.runner import Runner
from torch import nn
from torch.utils.data import Dataset

from a2mim_plugin.engine.hooks import OptimStepEMAHook, TotalBatchCheckHook
from a2mim_plugin.engine.hooks.total_batch_check_hook import LaunchLayout, check_launch_layout


class ToyRegression(BaseModel):
    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(3, 1)

    def forward(self, inputs, data_samples=None, mode='tensor'):
        out = self.linear(inputs)
        if mode == 'loss':
            return dict(loss=((out.squeeze(1) - data_samples)**2).mean())
        return out


class ToyData(Dataset):
    def __init__(self, n: int) -> None:
        g = torch.Generator().manual_seed(0)
        self.x, self.y = torch.randn(n, 3, generator=g), torch.randn(n, generator=g)

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, i):
        return dict(inputs=self.x[i], data_samples=self.y[i])


class StepRecorder(Hook):
    """Records the weights after every real optimizer step (torch's step post-hook) and the
    dataloader iteration it happened in, independently of the optimizer wrapper's counters."""

    def __init__(self) -> None:
        self.initial: Dict[str, torch.Tensor] = {}
        self.steps: List[Tuple[int, Dict[str, torch.Tensor]]] = []

    def before_train(self, runner) -> None:
        model = runner.model
        self.initial = {k: v.detach().clone() for k, v in model.named_parameters()}
        runner.optim_wrapper.optimizer.register_step_post_hook(
            lambda *_: self.steps.append(
                (runner.iter, {k: v.detach().clone() for k, v in model.named_parameters()})))


def _train(tmp_path: Path, hooks: list, *, samples: int = 6, epochs: int = 3, accum: int = 2,
           batch: int = 2, lr: float = 0.1, auto_scale_lr=None) -> Runner:
    runner = Runner(
        model=ToyRegression(),
        work_dir=str(tmp_path),
        train_dataloader=dict(
            dataset=ToyData(samples), batch_size=batch, num_workers=0,
            sampler=dict(type='DefaultSampler', shuffle=False),
            collate_fn=dict(type='default_collate')),
        optim_wrapper=dict(type='OptimWrapper', optimizer=dict(type='SGD', lr=lr),
                           accumulative_counts=accum),
        param_scheduler=[dict(type='LinearLR', start_factor=0.5, by_epoch=False, begin=0,
                              end=2)],
        train_cfg=dict(by_epoch=True, max_epochs=epochs),
        default_hooks=dict(checkpoint=None),
        custom_hooks=hooks,
        auto_scale_lr=auto_scale_lr,
        default_scope='mmpretrain',
        randomness=dict(seed=0),
        experiment_name=f'toy_{tmp_path.name}')
    runner.train()
    return runner


def _official_ema(recorder: StepRecorder, keep: float, warmup_iters: int,
                  warmup_ratio: float) -> Dict[str, torch.Tensor]:
    """OpenMixup's EMAHook: buffers start as the weights, then after every optimizer step
    ``ema = m_t * ema + (1 - m_t) * w``, ``m_t = (1 - (1 - t / T) * (1 - r)) * m`` for
    ``t <= T`` (t = runner.iter of the step), ``m`` afterwards."""
    ema = copy.deepcopy(recorder.initial)
    for it, weights in recorder.steps:
        m = keep if it > warmup_iters else (1 - (1 - it / warmup_iters) *
                                             (1 - warmup_ratio)) * keep
        for k in ema:
            ema[k] = m * ema[k] + (1 - m) * weights[k]
    return ema


# --------------------------------------------------------------------------------------------
# OptimStepEMAHook
# --------------------------------------------------------------------------------------------
def test_one_ema_update_per_optimizer_step_with_accumulation(tmp_path):
    """3 epochs x 3 iterations with 2 accumulation steps: the optimizer steps after
    iterations 2, 4, 6, 8 and 9 (the last, partial window); the EMA is updated exactly then,
    with the linear momentum warm-up, as OpenMixup's ``update_interval=2``."""
    ema_hook = OptimStepEMAHook(momentum=0.2, warmup_epochs=1, warmup_ratio=0.5)
    recorder = StepRecorder()
    _train(tmp_path, [ema_hook, recorder])
    assert [it for it, _ in recorder.steps] == [1, 3, 5, 7, 8]  # runner.iter, 0-based
    assert ema_hook.warmup_iters == 3
    assert int(ema_hook.ema_model.steps) - 1 == len(recorder.steps) == 5  # 1 = initial copy
    expected = _official_ema(recorder, keep=0.8, warmup_iters=3, warmup_ratio=0.5)
    for name, value in ema_hook.ema_model.module.named_parameters():
        torch.testing.assert_close(value, expected[name], rtol=1e-6, atol=1e-7, msg=name)
    # The warm-up really ran: a constant momentum gives other weights.
    constant = _official_ema(recorder, keep=0.8, warmup_iters=0, warmup_ratio=1.)
    assert not torch.allclose(expected['linear.weight'], constant['linear.weight'], atol=1e-4)


def test_momentum_warmup_values():
    hook = OptimStepEMAHook(momentum=4e-5, warmup_epochs=20, warmup_ratio=0.9)
    hook.warmup_iters = 20 * 2503  # what before_train sets for ViT-B/L (2503 iterations/epoch)
    assert 1 - hook.momentum_at(0) == pytest.approx(0.9 * 0.99996, rel=1e-12)
    assert 1 - hook.momentum_at(10 * 2503) == pytest.approx(0.95 * 0.99996, rel=1e-12)
    assert hook.momentum_at(20 * 2503) == pytest.approx(4e-5, rel=1e-9)
    assert hook.momentum_at(20 * 2503 + 1) == 4e-5


def test_stock_ema_hook_interval_misses_the_last_step(tmp_path):
    """Why the plugin hook: mmengine's ``EMAHook(interval=2)`` counts dataloader iterations
    from 0 and only copies at its first call, so the same run gets 4 averages for 5 steps."""
    stock = EMAHook(momentum=0.2, interval=2)
    recorder = StepRecorder()
    _train(tmp_path, [stock, recorder])
    averages = sum(1 for s in range(int(stock.ema_model.steps)) if s and s % 2 == 0)
    assert (len(recorder.steps), averages) == (5, 4)


def _ema_run(work_dir: Path, resume_from: Optional[Path] = None) -> Tuple[Runner,
                                                                            OptimStepEMAHook]:
    """8 iterations (one epoch: mmengine's iteration loop sleeps 2 s between epochs), 2
    accumulation steps, a checkpoint every 4 iterations, and an EMA with a momentum warm-up
    over 6 iterations, so a resume at 4 falls inside the warm-up."""
    ema_hook = OptimStepEMAHook(momentum=0.2, warmup_epochs=0.75, warmup_ratio=0.5)
    runner = Runner(
        model=ToyRegression(), work_dir=str(work_dir),
        train_dataloader=dict(dataset=ToyData(16), batch_size=2, num_workers=0,
                              sampler=dict(type='DefaultSampler', shuffle=False),
                              collate_fn=dict(type='default_collate')),
        optim_wrapper=dict(type='OptimWrapper', optimizer=dict(type='SGD', lr=0.1),
                           accumulative_counts=2),
        param_scheduler=[dict(type='LinearLR', start_factor=0.5, by_epoch=False, begin=0,
                              end=2)],
        train_cfg=dict(by_epoch=False, max_iters=8),
        default_hooks=dict(checkpoint=dict(type='CheckpointHook', interval=4, by_epoch=False)),
        custom_hooks=[ema_hook], default_scope='mmpretrain', randomness=dict(seed=0),
        experiment_name=f'ema_{work_dir.name}', log_level='WARNING',
        resume=resume_from is not None, load_from=None if resume_from is None else
        str(resume_from))
    runner.train()
    return runner, ema_hook


def test_resumed_ema_equals_the_uninterrupted_one(tmp_path):
    """A run resumed at iteration 4 keeps the EMA stored in the checkpoint (it does not copy
    the model's weights into it again): its EMA weights, buffers and update count equal the
    uninterrupted run's, bit for bit."""
    reference, reference_ema = _ema_run(tmp_path / 'reference')
    assert reference_ema.warmup_iters == 6
    ckpt = torch.load(tmp_path / 'reference' / 'iter_4.pth', map_location='cpu')
    # EMAHook stores the EMA as the checkpoint's state_dict and the model in ema_state_dict.
    assert not torch.equal(ckpt['state_dict']['linear.weight'],
                           ckpt['ema_state_dict']['module.linear.weight'])

    resumed, resumed_ema = _ema_run(tmp_path / 'resumed', tmp_path / 'reference' / 'iter_4.pth')
    assert resumed.iter == reference.iter == 8
    assert int(resumed_ema.ema_model.steps) == int(reference_ema.ema_model.steps) == 5
    for (name, value), (_, expected) in zip(resumed_ema.ema_model.state_dict().items(),
                                            reference_ema.ema_model.state_dict().items()):
        assert torch.equal(value, expected), name
    for (name, value), (_, expected) in zip(resumed.model.state_dict().items(),
                                            reference.model.state_dict().items()):
        assert torch.equal(value, expected), name
    assert not torch.equal(resumed_ema.ema_model.module.linear.weight,
                           resumed.model.linear.weight)


@pytest.mark.parametrize('kwargs, key', [
    (dict(momentum=0.), 'momentum'), (dict(momentum=1.), 'momentum'),
    (dict(warmup_epochs=-1), 'warmup_epochs'), (dict(warmup_ratio=0.), 'warmup_ratio')])
def test_ema_hook_rejects_bad_arguments(kwargs, key):
    with pytest.raises(ValueError, match=key):
        OptimStepEMAHook(**kwargs)


# --------------------------------------------------------------------------------------------
# TotalBatchCheckHook
# --------------------------------------------------------------------------------------------
def _layout(**kw) -> LaunchLayout:
    base = dict(recipe_total=2048, world_size=8, batch_size=256, accumulative_counts=1,
                lr=1.2e-3, auto_scale_lr=False, base_batch_size=2048)
    base.update(kw)
    return LaunchLayout(**base)


def test_layout_as_the_recipe_is_info():
    level, msg = check_launch_layout(_layout())
    assert level == logging.INFO
    assert '8 process(es) x 256 images x 1 accumulation step(s) = 2048' in msg
    assert 'learning rate 0.0012' in msg


def test_other_gpu_count_without_auto_scale_warns_with_both_fixes():
    """A 4-GPU recipe (4 x 128 x 2 = 1024) launched on 8 GPUs: 2048 at the same LR."""
    level, msg = check_launch_layout(_layout(
        recipe_total=1024, world_size=8, batch_size=128, accumulative_counts=2, lr=1e-2,
        base_batch_size=512))
    assert level == logging.WARNING
    assert 'total batch of 1024 images per optimizer step' in msg
    assert '8 process(es) x 128 images x 2 accumulation step(s) = 2048' in msg
    assert 'learning rate 0.01 with 2 x its batch' in msg
    assert 'launch 4 process(es) (GPUs)' in msg
    assert '--auto-scale-lr to keep this batch and scale the learning rate linearly to 0.02' \
        in msg
    assert 'default_hooks.total_batch_check.total_batch' in msg


def test_no_whole_gpu_count_is_named():
    level, msg = check_launch_layout(_layout(world_size=3, batch_size=384))
    assert level == logging.WARNING
    assert 'no whole number of processes reaches 2048 with 384 images' in msg
    assert 'train_dataloader.batch_size or optim_wrapper.accumulative_counts' in msg


def test_auto_scale_that_ignores_accumulation_warns():
    """ViT-B pre-training (8 x 128 x 2, base_batch_size 1024) on 4 GPUs with 4 accumulation
    steps keeps 2048, but mmengine's --auto-scale-lr halves the LR (it counts 4 x 128)."""
    level, msg = check_launch_layout(_layout(
        world_size=4, batch_size=128, accumulative_counts=4, lr=2e-4, auto_scale_lr=True,
        base_batch_size=1024))
    assert level == logging.WARNING
    assert 'scaled the learning rate by processes x batch / auto_scale_lr.base_batch_size = 0.5' \
        in msg
    assert 'the linear rule gives 0.0004' in msg
    assert 'set optim_wrapper.accumulative_counts=2' in msg


def test_auto_scale_that_follows_the_batch_is_info():
    level, msg = check_launch_layout(_layout(world_size=4, lr=6e-4, auto_scale_lr=True))
    assert level == logging.INFO
    assert '= 1024 images per optimizer step (recipe: 2048)' in msg
    assert 'set the learning rate to 0.0006' in msg


def _log_text(runner: Runner) -> str:
    return Path(runner.log_dir, f'{runner.timestamp}.log').read_text()


def test_runner_log_names_the_run_and_the_lr(tmp_path):
    """1 process x 2 x 1 accumulation against a recipe of 4: the warning in the run's log,
    with the LR read from the built optimizer (before the warm-up lowers it)."""
    runner = _train(tmp_path, [TotalBatchCheckHook(total_batch=4)], accum=1, epochs=1,
                    auto_scale_lr=dict(base_batch_size=4))
    log = _log_text(runner)
    assert 'WARNING - Launch layout differs from the recipe' in log
    assert '1 process(es) x 2 images x 1 accumulation step(s) = 2' in log
    assert 'the recipe\'s learning rate 0.1 with 0.5 x its batch' in log
    assert 'launch 2 process(es) (GPUs)' in log and 'linearly to 0.05' in log


def test_runner_with_auto_scale_lr_reports_the_scaled_lr(tmp_path):
    runner = _train(tmp_path, [TotalBatchCheckHook(total_batch=4)], accum=1, epochs=1,
                    auto_scale_lr=dict(base_batch_size=4, enable=True))
    log = _log_text(runner)
    assert 'Launch layout differs' not in log
    assert 'INFO - Launch layout: 1 process(es) x 2 images x 1 accumulation step(s) = 2 ' \
        'images per optimizer step (recipe: 4); --auto-scale-lr set the learning rate to 0.05' \
        in log


@pytest.mark.parametrize('total, line', [
    (4, 'INFO - Launch layout: 1 process(es) x 2 images x 2 accumulation step(s) = 4 images '
        'per optimizer step, the total batch this recipe was written for; learning rate 0.1.'),
    (8, 'WARNING - Launch layout differs from the recipe: this config was written for a total '
        'batch of 8 images per optimizer step (default_hooks.total_batch_check.total_batch), '
        'this run has 1 process(es) x 2 images x 2 accumulation step(s) = 4, and '
        '--auto-scale-lr is off, so the run uses the recipe\'s learning rate 0.1 with 0.5 x its '
        'batch. Fix: either launch 2 process(es) (GPUs) to train the recipe as written, or add '
        '--auto-scale-lr (after setting auto_scale_lr.base_batch_size in the config) to scale '
        'the learning rate for this batch.')])
def test_runner_counts_the_accumulation_steps(tmp_path, total, line):
    """With optim_wrapper.accumulative_counts=2 the run's total batch is 1 x 2 x 2 = 4: the
    same total as the recipe's is INFO, another one names both totals."""
    runner = _train(tmp_path, [TotalBatchCheckHook(total_batch=total)], accum=2, epochs=1)
    log = _log_text(runner)
    assert line in log
    assert log.count('Launch layout') == 1


class _AsIfProcesses(Hook):
    """Makes the runner report ``n`` processes before the other hooks' ``before_train`` (the
    real two-process launch is in tests/test_distributed/test_launch_layout.py)."""

    priority = 'VERY_HIGH'

    def __init__(self, n: int) -> None:
        self.n = n

    def before_train(self, runner) -> None:
        runner._world_size = self.n


def test_runner_counts_the_processes(tmp_path):
    runner = _train(tmp_path, [_AsIfProcesses(2), TotalBatchCheckHook(total_batch=8)], accum=2,
                    epochs=1)
    assert 'INFO - Launch layout: 2 process(es) x 2 images x 2 accumulation step(s) = 8 images ' \
        'per optimizer step, the total batch this recipe was written for' in _log_text(runner)


@pytest.mark.parametrize('total', [0, -2048, 2048.0, '2048', True])
def test_total_batch_must_be_a_positive_int(total):
    with pytest.raises(ValueError, match='default_hooks.total_batch_check.total_batch'):
        TotalBatchCheckHook(total_batch=total)
