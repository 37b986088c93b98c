"""A run killed with SIGKILL between checkpoints and restarted with ``--resume`` ends with the
very same weights as a run that was never interrupted (one process, CPU, num_workers=0)."""
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from a2mim_plugin.engine.hooks.rng_state_hook import (RNGStateHook, _RestoreAfterSkip,
                                                      get_rng_state, set_rng_state)
from dist_utils import load_state, tail, train_env, wait_for_files, write_vit_config
from helpers import MMPRETRAIN_TRAIN, REPO_ROOT, run_stock_train


def _draw():
    return random.random(), float(np.random.rand()), float(torch.rand(()))


def test_rng_state_round_trip_through_torch_load(tmp_path):
    """The saved states survive ``torch.load(weights_only=True)`` and reproduce the draws."""
    torch.save(dict(rng_states=get_rng_state()), tmp_path / 'c.pth')
    first = _draw()
    set_rng_state(torch.load(tmp_path / 'c.pth', map_location='cpu')['rng_states'])
    assert _draw() == first


def test_restore_happens_after_the_resume_skip():
    class Loop:
        pass

    set_rng_state_at = get_rng_state()
    expected = _draw()
    loop = Loop()
    batches = iter(range(10))
    loop.dataloader_iterator = _RestoreAfterSkip(loop, batches, 3, set_rng_state_at)
    assert [next(loop.dataloader_iterator) for _ in range(3)] == [0, 1, 2]
    _draw()  # RNG moves on while skipping ...
    assert next(loop.dataloader_iterator) == 3  # ... and is reset before the 4th batch
    assert loop.dataloader_iterator is batches, 'the proxy removes itself'
    assert _draw() == expected


def test_other_world_size_restores_rank0_only():
    hook = RNGStateHook()
    hook.after_load_checkpoint(None, dict(rng_states=dict(world_size=2, states=['r0', 'r1'])))
    assert hook._own_state(None) == 'r0'  # single process here: rank 0


# Seconds to wait for the run to reach the kill point: start-up and ~10 tiny iterations take
# well under a minute on an idle 2-core machine; the bound only has to survive a busy one.
KILL_POINT_TIMEOUT = float(os.environ.get('A2MIM_TEST_KILL_POINT_TIMEOUT', '900'))
RUN_TIMEOUT = 900  # each whole training subprocess (helpers.run_stock_train's default: 300)


def _what_is_there(work_dir: Path, proc: subprocess.Popen, log_path: Path,
                   waited: float) -> str:
    """Everything the kill-point wait looks at, for the failure message."""
    pointer = work_dir / 'last_checkpoint'
    files = sorted(p.name for p in work_dir.iterdir()) if work_dir.is_dir() else []
    state = 'running' if proc.poll() is None else f'exited with {proc.returncode}'
    return (f'after {waited:.0f} s: process {state}; files in {work_dir.name}: {files}; '
            f'last_checkpoint: {pointer.read_text().strip() if pointer.exists() else None!r}'
            f'\n--- log tail ---\n{tail(log_path.read_text())}')


def _kill_after(config, work_dir, env, kill_after: int, checkpoint: str, next_one: str):
    """Start training, SIGKILL it after iteration ``kill_after`` once ``checkpoint`` is
    written and named by ``last_checkpoint`` (and before ``next_one`` is written).

    The event waited for is the ``paused_at_<kill_after>`` marker of ``PauseAfterIterHook``,
    written after every other hook of that iteration; the run then sleeps until killed.
    """
    log_path = work_dir.parent / f'{work_dir.name}.log'
    log = open(log_path, 'w')
    proc = subprocess.Popen(
        [sys.executable, str(MMPRETRAIN_TRAIN), str(config), '--work-dir', str(work_dir)],
        cwd=REPO_ROOT, env=dict(env, A2MIM_TEST_PAUSE_AFTER_ITER=str(kill_after),
                                A2MIM_TEST_PAUSE_SECONDS=str(KILL_POINT_TIMEOUT + 60)),
        stdout=log, stderr=subprocess.STDOUT)
    pointer = work_dir / 'last_checkpoint'
    ckpt = work_dir / checkpoint
    start = time.monotonic()
    try:
        wait_for_files([work_dir / f'paused_at_{kill_after}'], proc, log_path,
                       KILL_POINT_TIMEOUT)  # A2MIM_TEST_KILL_POINT_TIMEOUT
        assert pointer.exists() and pointer.read_text().strip() == str(ckpt), \
            _what_is_there(work_dir, proc, log_path, time.monotonic() - start)
        proc.send_signal(signal.SIGKILL)
        assert proc.wait(timeout=30) == -signal.SIGKILL
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=30)
        log.close()
    assert ckpt.exists() and not (work_dir / next_one).exists(), \
        _what_is_there(work_dir, proc, log_path, time.monotonic() - start)


@pytest.mark.slow
def test_sigkill_then_resume_is_bit_exact(tmp_path, photo_dataset, monkeypatch):
    # Random crops, flips and masks (numpy) and drop-path (torch) all draw random numbers.
    # 28 images in batches of 4: 7 iterations per epoch, so mmengine's resume skip of 8
    # iterations crosses an epoch end (the sampler reshuffles with seed + epoch).
    config = write_vit_config(tmp_path / 'vit_rand.py', photo_dataset, batch=4, max_iters=10,
                              drop_path=0.1)
    env = train_env()
    for key, value in env.items():
        monkeypatch.setenv(key, value)

    # uninterrupted, checkpoints at 2, 4, ..., 10
    run_stock_train(config, tmp_path / 'ref', timeout=RUN_TIMEOUT)
    reference = load_state(tmp_path / 'ref' / 'iter_10.pth')

    work_dir = tmp_path / 'killed'
    _kill_after(config, work_dir, env, kill_after=9, checkpoint='iter_8.pth',
                next_one='iter_10.pth')
    saved = torch.load(work_dir / 'iter_8.pth', map_location='cpu')
    assert saved['rng_states']['world_size'] == 1
    control = tmp_path / 'control'  # the same checkpoint resumed without RNGStateHook
    control.mkdir()
    shutil.copy(work_dir / 'iter_8.pth', control / 'iter_8.pth')

    proc = run_stock_train(config, work_dir, '--resume', timeout=RUN_TIMEOUT)
    output = proc.stdout + proc.stderr
    assert 'resumed epoch: 0, iter: 8' in output
    assert 'Reach the end of the dataloader' in output, 'the skip crossed an epoch end'
    resumed = torch.load(work_dir / 'iter_10.pth', map_location='cpu')
    assert resumed['meta']['iter'] == 10
    assert resumed['state_dict'].keys() == reference.keys()
    for name, tensor in reference.items():
        assert torch.equal(resumed['state_dict'][name], tensor), name
    ref_ckpt = torch.load(tmp_path / 'ref' / 'iter_10.pth', map_location='cpu')
    for key in ('exp_avg', 'exp_avg_sq'):
        for idx, state in ref_ckpt['optimizer']['state'].items():
            assert torch.equal(resumed['optimizer']['state'][idx][key], state[key])
    assert resumed['param_schedulers'] == ref_ckpt['param_schedulers']

    # Control: mmengine alone (no RNG states) continues model, optimizer and schedulers but
    # draws other random numbers after the resume, so the weights differ.
    run_stock_train(config, control, '--resume', str(control / 'iter_8.pth'),
                    '--cfg-options', 'custom_hooks.0.type=LossRecorderHook',
                    timeout=RUN_TIMEOUT)
    stock = load_state(control / 'iter_10.pth')
    assert not all(torch.equal(stock[name], t) for name, t in reference.items())


@pytest.mark.slow
def test_sigkill_then_resume_is_bit_exact_with_an_epoch_based_loop(tmp_path, photo_dataset,
                                                                   monkeypatch):
    """EpochBasedTrainLoop: checkpoints at epoch ends, killed in the middle of epoch 2; mmengine
    restarts epoch 2 and the hook restores the generators in its before_train_epoch."""
    config = write_vit_config(tmp_path / 'vit_epochs.py', photo_dataset, batch=4, max_iters=21,
                              max_epochs=3, drop_path=0.1)
    env = train_env()
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    run_stock_train(config, tmp_path / 'ref', timeout=RUN_TIMEOUT)
    reference = load_state(tmp_path / 'ref' / 'epoch_3.pth')

    work_dir = tmp_path / 'killed'
    _kill_after(config, work_dir, env, kill_after=10, checkpoint='epoch_1.pth',
                next_one='epoch_2.pth')
    proc = run_stock_train(config, work_dir, '--resume', timeout=RUN_TIMEOUT)
    assert 'resumed epoch: 1, iter: 7' in proc.stdout + proc.stderr
    resumed = load_state(work_dir / 'epoch_3.pth')
    for name, tensor in reference.items():
        assert torch.equal(resumed[name], tensor), name
