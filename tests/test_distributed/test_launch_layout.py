"""A recipe launched on more processes than it was written for says so at the start.

Two CPU processes (torchrun, gloo) run MMPretrain's ``tools/train.py --launcher pytorch`` on
the tiny ViT config with ``TotalBatchCheckHook(total_batch=2)``: a recipe of 1 GPU x 2 images,
launched as 2 processes x 2 images = 4 per optimizer step with ``--auto-scale-lr`` off. The
warning must come once (rank 0), before the first iteration, with the recipe's total, the
run's total, the learning rate the run uses and both fixes; the run then trains normally.
"""
import re
import socket
import subprocess

import pytest

from dist_utils import BIN, read_losses, tail, train_env, write_vit_config
from helpers import MMPRETRAIN_TRAIN, REPO_ROOT

pytestmark = pytest.mark.slow
MAX_ITERS = 2

LAYOUT_OVERLAY = '''_base_ = {base!r}
default_hooks = dict(total_batch_check=dict(type='TotalBatchCheckHook', total_batch=2))
auto_scale_lr = dict(base_batch_size=2)
'''


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def test_two_processes_for_a_one_gpu_recipe_warn_once(tmp_path, photo_dataset):
    base = write_vit_config(tmp_path / 'vit_2xb2.py', photo_dataset, batch=2,
                            max_iters=MAX_ITERS)
    config = tmp_path / 'vit_recipe_1xb2.py'
    config.write_text(LAYOUT_OVERLAY.format(base=str(base)))
    work_dir = tmp_path / 'work'
    cmd = [str(BIN / 'torchrun'), '--nproc_per_node=2', f'--master_port={_free_port()}',
           str(MMPRETRAIN_TRAIN), str(config), '--launcher', 'pytorch', '--work-dir',
           str(work_dir)]
    proc = subprocess.run(cmd, cwd=REPO_ROOT, env=train_env(), capture_output=True, text=True,
                          timeout=420)
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, f'{" ".join(cmd)}\n{tail(proc.stdout)}\n{tail(proc.stderr)}'
    assert 'Distributed training: True' in output and 'GPU number: 2' in output

    warnings = re.findall(r'WARNING - (Launch layout differs from the recipe[^\n]*)', output)
    assert len(warnings) == 1, 'one warning, from rank 0 only'
    message = warnings[0]
    assert 'written for a total batch of 2 images per optimizer step' in message
    assert '2 process(es) x 2 images x 1 accumulation step(s) = 4' in message
    assert "the recipe's learning rate 0.001 with 2 x its batch" in message
    assert 'launch 1 process(es) (GPUs) to train the recipe as written' in message
    assert 'add --auto-scale-lr to keep this batch and scale the learning rate linearly ' \
        'to 0.002' in message
    # Logged before the first iteration, and training went on with both ranks.
    assert output.index('Launch layout differs') < output.index('Iter(train) [1/')
    losses = read_losses(work_dir)
    assert sorted(losses) == [0, 1]
    assert all(len(records) == MAX_ITERS for records in losses.values())
