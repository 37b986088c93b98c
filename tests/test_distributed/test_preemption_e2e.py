"""Signals from outside, through the real entry points: MMPretrain's ``tools/train.py`` in one
process, ``torchrun`` with 2 processes, and ``tools/slurm_pretrain.sh`` submitting a 2-task
batch job to the local Slurm. Each run is stopped in the middle of an epoch and of a
gradient-accumulation cycle, started again (by the test with the very same command, or by
Slurm after the job requeued itself) and must end with the weights of an uninterrupted run.

The config: tiny A2MIM ViT, random crops/flips/masks and drop-path, EpochBasedTrainLoop over 28
photos, ``accumulative_counts=2``, with ``AutoResumeHook`` and ``PreemptionHook`` as in the
pre-training configs. ``WaitForSignalHook`` writes ``paused_at_3_rank<R>`` after iteration 3 and
waits until the signal has arrived; the test waits for those files, then signals.
"""
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from dist_utils import BIN, load_state, tail, train_env, wait_for_files, write_vit_config
from helpers import MMPRETRAIN_TRAIN, REPO_ROOT

pytestmark = pytest.mark.slow
HOOKS = [dict(type='AutoResumeHook'), dict(type='WaitForSignalHook'),
         dict(type='PreemptionHook', signals=['SIGTERM', 'SIGUSR1'])]
EPOCHS = 2
SIGNAL_AT = 3  # the middle of the cycle 3-4: the runs stop after iteration 4
TIMEOUT = 600  # failure guard for each run or wait


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def _config(root: Path, data: Path, batch: int) -> Path:
    return write_vit_config(root / f'vit_preempt_b{batch}.py', data, batch=batch,
                            max_iters=14, max_epochs=EPOCHS, drop_path=0.1, accumulate=2,
                            extra_hooks=HOOKS)


def _same_weights(path: Path, reference: dict) -> None:
    state = load_state(path)
    assert state.keys() == reference.keys()
    for name, tensor in reference.items():
        assert torch.equal(state[name], tensor), name


def _start(cmd, log_path: Path, env) -> subprocess.Popen:
    return subprocess.Popen(cmd, cwd=REPO_ROOT, env=env, stdout=open(log_path, 'a'),
                            stderr=subprocess.STDOUT, start_new_session=True)


def _run(cmd, log_path: Path, env) -> int:
    proc = _start(cmd, log_path, env)
    try:
        return proc.wait(timeout=TIMEOUT)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)


def _signal_then_wait(cmd, work_dir: Path, log_path: Path, env, ranks: int, sig) -> tuple:
    """Start ``cmd``, send ``sig`` to its launcher once every rank paused after iteration 3;
    return (exit status, seconds from the signal to the exit)."""
    proc = _start(cmd, log_path, dict(env, A2MIM_TEST_SIGNAL_AT_ITER=str(SIGNAL_AT)))
    try:
        wait_for_files([work_dir / f'paused_at_{SIGNAL_AT}_rank{r}' for r in range(ranks)],
                       proc, log_path, TIMEOUT)
        sent = time.monotonic()
        proc.send_signal(sig)
        code = proc.wait(timeout=TIMEOUT)
        return code, time.monotonic() - sent
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)


def _assert_stopped_at_4(work_dir: Path, log: str, world_size: int) -> None:
    pointer = (work_dir / 'last_checkpoint').read_text()
    assert pointer == str(work_dir / 'iter_4.pth')
    saved = torch.load(pointer, map_location='cpu')
    assert (saved['meta']['epoch'], saved['meta']['iter']) == (0, 4)
    assert saved['rng_states']['world_size'] == world_size
    assert len(saved['rng_states']['states']) == world_size
    assert 'PreemptionHook: stopped after iteration 4' in log


def _assert_resumed(work_dir: Path, log: str, reference: dict) -> None:
    assert f'AutoResumeHook: resuming from {work_dir}/iter_4.pth' in log
    assert 'resumed epoch: 0, iter: 4' in log
    assert 'replaying its first 4 batch(es)' in log
    _same_weights(work_dir / f'epoch_{EPOCHS}.pth', reference)


def test_single_process_sigterm_exit_75_and_the_same_command_resumes(tmp_path, photo_dataset):
    config = _config(tmp_path, photo_dataset, batch=4)
    env = train_env()

    def cmd(work_dir):
        return [sys.executable, str(MMPRETRAIN_TRAIN), str(config), '--work-dir', str(work_dir)]

    assert _run(cmd(tmp_path / 'ref'), tmp_path / 'ref.log', env) == 0, \
        tail((tmp_path / 'ref.log').read_text())
    reference = load_state(tmp_path / 'ref' / f'epoch_{EPOCHS}.pth')

    work_dir, log_path = tmp_path / 'run', tmp_path / 'run.log'
    code, seconds = _signal_then_wait(cmd(work_dir), work_dir, log_path, env, 1, signal.SIGTERM)
    print(f'single process: SIGTERM to exit {seconds:.2f} s')
    assert code == 75, tail(log_path.read_text())
    _assert_stopped_at_4(work_dir, log_path.read_text(), 1)
    assert _run(cmd(work_dir), log_path, env) == 0, tail(log_path.read_text())
    _assert_resumed(work_dir, log_path.read_text(), reference)


@pytest.fixture(scope='module')
def two_rank_reference(tmp_path_factory, photo_dataset):
    """2 processes x batch 2 through torchrun, uninterrupted."""
    root = tmp_path_factory.mktemp('preempt2')
    config = _config(root, photo_dataset, batch=2)
    work_dir, log_path = root / 'ref', root / 'ref.log'
    assert _run(_torchrun(config, work_dir), log_path, train_env()) == 0, \
        tail(log_path.read_text())
    return dict(config=config, state=load_state(work_dir / f'epoch_{EPOCHS}.pth'))


def _torchrun(config: Path, work_dir: Path) -> list:
    return [str(BIN / 'torchrun'), '--nproc_per_node=2', f'--master_port={_free_port()}',
            str(MMPRETRAIN_TRAIN), str(config), '--launcher', 'pytorch', '--work-dir',
            str(work_dir)]


def test_torchrun_sigterm_both_ranks_stop_at_the_same_step(tmp_path, two_rank_reference):
    """SIGTERM to torchrun, which passes it on to its two workers."""
    config, env = two_rank_reference['config'], train_env()
    work_dir, log_path = tmp_path / 'run', tmp_path / 'run.log'
    cmd = _torchrun(config, work_dir)
    code, seconds = _signal_then_wait(cmd, work_dir, log_path, env, 2, signal.SIGTERM)
    print(f'torchrun, 2 processes: SIGTERM to exit {seconds:.2f} s (torchrun exit {code})')
    log = log_path.read_text()
    # torchrun turns its own SIGTERM into SignalException (exit 1) after the workers exited.
    assert code == 1 and 'got signal: 15' in log, tail(log)
    _assert_stopped_at_4(work_dir, log, 2)
    assert _run(_torchrun(config, work_dir), log_path, env) == 0, tail(log_path.read_text())
    _assert_resumed(work_dir, log_path.read_text(), two_rank_reference['state'])


def _job(job_id: str, env) -> dict:
    out = subprocess.run(['scontrol', 'show', 'job', job_id], env=env, capture_output=True,
                         text=True, timeout=60).stdout
    return dict(re.findall(r'(\w+)=(\S*)', out))


def _wait_job(job_id: str, env, done) -> dict:
    deadline = time.monotonic() + TIMEOUT
    while True:
        info = _job(job_id, env)
        if done(info):
            return info
        if time.monotonic() > deadline:
            pytest.fail(f'job {job_id} after {TIMEOUT} s: {info}')
        time.sleep(0.5)


def test_sbatch_job_requeues_itself_and_resumes(slurm_cluster, tmp_path, two_rank_reference):
    """tools/slurm_pretrain.sh submits a 2-task job; `scancel --signal=USR1` (what
    `--signal=USR1@180` does before the time limit) reaches both ranks; the job requeues
    itself, restarts with the same command and ends with the uninterrupted weights."""
    work_dir = tmp_path / 'run'
    out_file = tmp_path / 'job.out'
    env = train_env(SLURM_CONF=slurm_cluster['SLURM_CONF'], PARTITION=slurm_cluster['partition'],
                    GPUS='2', GPUS_PER_NODE='2', CPUS_PER_TASK='1', MASTER_PORT=str(_free_port()),
                    SBATCH_ARGS=f'--output={out_file}', A2MIM_TEST_SIGNAL_AT_ITER=str(SIGNAL_AT))
    submit = subprocess.run(['bash', 'tools/slurm_pretrain.sh', str(two_rank_reference['config']),
                             str(work_dir)], cwd=REPO_ROOT, env=env, capture_output=True,
                            text=True, timeout=120)
    assert submit.returncode == 0, submit.stderr
    job_id = submit.stdout.strip()
    try:
        wait_for_files([work_dir / f'paused_at_{SIGNAL_AT}_rank{r}' for r in (0, 1)], None,
                       out_file, TIMEOUT)
        subprocess.run(['scancel', '--signal=USR1', job_id], env=env, check=True, timeout=60)
        # Requeued: pending with a begin time ~2 minutes ahead; let it start now.
        _wait_job(job_id, env, lambda j: j.get('Restarts') == '1'
                  and j.get('JobState') == 'PENDING')
        subprocess.run(['scontrol', 'update', f'JobId={job_id}', 'StartTime=now'], env=env,
                       check=True, timeout=60)
        final = _wait_job(job_id, env, lambda j: j.get('JobState') in (
            'COMPLETED', 'FAILED', 'CANCELLED', 'TIMEOUT', 'NODE_FAIL'))
    finally:
        subprocess.run(['scancel', job_id], env=env, timeout=60)
    log = out_file.read_text()
    assert final['JobState'] == 'COMPLETED', tail(log)
    assert f'job {job_id} start 0, 2 tasks' in log and f'job {job_id} start 1, 2 tasks' in log
    assert f'training saved and stopped (exit 75); scontrol requeue {job_id}' in log
    assert 'PreemptionHook: stopped after iteration 4 (SIGUSR1)' in log
    _assert_resumed(work_dir, log, two_rank_reference['state'])
    assert not (work_dir / 'iter_4.pth').exists(), 'the signal checkpoint was replaced'
