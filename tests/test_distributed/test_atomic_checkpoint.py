"""A job killed while it writes a checkpoint leaves the previous checkpoint resumable."""
import signal
import subprocess
import sys

import pytest
import torch

from a2mim_plugin.engine.hooks import atomic_checkpoint_hook as ach
from dist_utils import tail, train_env, write_vit_config
from helpers import MMPRETRAIN_TRAIN, REPO_ROOT, run_stock_train


def test_atomic_write_keeps_the_old_content_when_the_write_fails(tmp_path, monkeypatch):
    target = tmp_path / 'last_checkpoint'
    ach.atomic_write_bytes(b'/work/iter_2.pth', str(target))

    def broken_fsync(fd):
        raise OSError('disk gone')

    monkeypatch.setattr(ach.os, 'fsync', broken_fsync)
    with pytest.raises(OSError, match='disk gone'):
        ach.atomic_write_bytes(b'/work/iter_4.pth', str(target))
    assert target.read_bytes() == b'/work/iter_2.pth'
    assert sorted(p.name for p in tmp_path.iterdir()) == ['last_checkpoint'], 'no temp left'


def _train_killed_while_writing(config, work_dir, env):
    """Run until the checkpoint of iteration 4 is half written, where the process SIGKILLs
    itself (test kit hook on mmengine's LocalBackend.put)."""
    proc = subprocess.run(
        [sys.executable, str(MMPRETRAIN_TRAIN), str(config), '--work-dir', str(work_dir)],
        cwd=REPO_ROOT, env=dict(env, A2MIM_TEST_KILL_WRITING='iter_4.pth'),
        capture_output=True, text=True, timeout=300)
    assert proc.returncode == -signal.SIGKILL, tail(proc.stdout + proc.stderr)


@pytest.mark.slow
def test_stock_hook_with_max_keep_loses_the_run(tmp_path, photo_dataset):
    """Why the plugin's hook exists: mmengine deletes the old checkpoint before writing the
    new one, so with max_keep_ckpts=1 the pointer names a deleted file after the kill."""
    env = train_env()
    config = write_vit_config(tmp_path / 'stock.py', photo_dataset, max_iters=4,
                              checkpoint_hook='CheckpointHook', max_keep=1)
    work_dir = tmp_path / 'stock'
    _train_killed_while_writing(config, work_dir, env)
    assert not (work_dir / 'iter_2.pth').exists()
    assert (work_dir / 'last_checkpoint').read_text() == str(work_dir / 'iter_2.pth')
    with pytest.raises(Exception):  # a truncated iter_4.pth under its final name
        torch.load(work_dir / 'iter_4.pth', map_location='cpu')
    proc = subprocess.run(
        [sys.executable, str(MMPRETRAIN_TRAIN), str(config), '--work-dir', str(work_dir),
         '--resume'], cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode != 0


@pytest.mark.slow
def test_atomic_hook_resumes_from_the_previous_complete_checkpoint(tmp_path, photo_dataset,
                                                                   monkeypatch):
    env = train_env()
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    config = write_vit_config(tmp_path / 'atomic.py', photo_dataset, max_iters=4,
                              checkpoint_hook='AtomicCheckpointHook', max_keep=1)
    work_dir = tmp_path / 'atomic'
    _train_killed_while_writing(config, work_dir, env)

    assert not (work_dir / 'iter_4.pth').exists(), 'no partial file under the final name'
    assert (work_dir / '.iter_4.pth.partial').exists()
    assert (work_dir / 'last_checkpoint').read_text() == str(work_dir / 'iter_2.pth')
    assert torch.load(work_dir / 'iter_2.pth', map_location='cpu')['meta']['iter'] == 2

    proc = run_stock_train(config, work_dir, '--resume')
    out = proc.stdout + proc.stderr
    assert f'Auto resumed from the latest checkpoint {work_dir / "iter_2.pth"}' in out
    assert 'resumed epoch: 0, iter: 2' in out
    assert 'left by a checkpoint write that did not finish' in out
    assert torch.load(work_dir / 'iter_4.pth', map_location='cpu')['meta']['iter'] == 4
    assert (work_dir / 'last_checkpoint').read_text() == str(work_dir / 'iter_4.pth')
    names = sorted(p.name for p in work_dir.iterdir() if p.suffix in ('.pth', '.partial'))
    assert names == ['iter_4.pth'], 'max_keep_ckpts=1 and no temp files left'
    assert not any(p.name.startswith('.') for p in work_dir.iterdir())
