"""Interrupted training resumes with MMPretrain's stock entry point, weights-only loading on."""
import subprocess
import sys

import pytest
import torch

from helpers import by_step, read_scalars, run_stock_train, write_tiny_config

pytestmark = pytest.mark.slow


def test_resume_continues_iteration_lr_and_optimizer_state(tmp_path, photo_dataset):
    config = write_tiny_config(tmp_path / 'tiny_a2mim.py', photo_dataset)

    # Reference: 4 uninterrupted iterations.
    ref_dir = tmp_path / 'ref'
    run_stock_train(config, ref_dir)
    ref_lr = by_step(read_scalars(ref_dir), 'lr')
    assert sorted(ref_lr) == [1, 2, 3, 4]

    # Interrupted run: stop after 2 iterations, then `--resume` to 4.
    work_dir = tmp_path / 'resumed'
    run_stock_train(config, work_dir, '--cfg-options', 'train_cfg.max_iters=2')
    first = torch.load(work_dir / 'iter_2.pth', map_location='cpu')  # weights_only=True default
    assert first['meta']['iter'] == 2
    run_stock_train(config, work_dir, '--resume')
    final = torch.load(work_dir / 'iter_4.pth', map_location='cpu')

    records = read_scalars(work_dir)
    lr = by_step(records, 'lr')
    assert sorted(lr) == [1, 2, 3, 4], 'the resumed run must log iterations 3 and 4 only once'
    for step in (3, 4):  # the scheduler continues where it stopped, not from its start
        assert lr[step] == pytest.approx(ref_lr[step], rel=1e-6)
    assert lr[3] < lr[2]

    assert final['meta']['iter'] == 4
    steps_before = {k: v['step'].item() for k, v in first['optimizer']['state'].items()}
    steps_after = {k: v['step'].item() for k, v in final['optimizer']['state'].items()}
    assert set(steps_before.values()) == {2.0}
    assert set(steps_after.values()) == {4.0}, 'AdamW state must continue, not restart'
    # The moments continued from the checkpoint: after 2 more steps they are neither the saved
    # ones nor those of a fresh optimizer that took 2 steps.
    saved = first['optimizer']['state'][0]['exp_avg_sq']
    assert not torch.equal(final['optimizer']['state'][0]['exp_avg_sq'], saved)


def test_runner_checkpoint_needs_the_plugin_allow_list(tmp_path, photo_dataset):
    """Without ``import a2mim_plugin`` torch's weights-only loader refuses the checkpoint."""
    config = write_tiny_config(tmp_path / 'tiny_a2mim.py', photo_dataset)
    run_stock_train(config, tmp_path / 'run', '--cfg-options', 'train_cfg.max_iters=2')
    ckpt = tmp_path / 'run' / 'iter_2.pth'
    code = f'import torch; torch.load({str(ckpt)!r}, map_location="cpu")'
    proc = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True)
    assert proc.returncode != 0 and 'Unsupported global' in proc.stderr
