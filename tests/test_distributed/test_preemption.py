"""PreemptionHook and AutoResumeHook in one process (fast): the stop falls on the end of a
gradient-accumulation cycle, a mid-epoch checkpoint of an EpochBasedTrainLoop resumes bit for
bit (already trained batches replayed, not trained), the same command resumes by itself, a
second signal during the save changes nothing, and the ranks' stop decision is a collective.

The run: tiny A2MIM ViT, random crops/flips/masks and drop-path, 28 photos in batches of 4
(7 iterations per epoch), 2 epochs, ``accumulative_counts=2`` (cycles cross the epoch end).
The signals come from the run itself (``WaitForSignalHook``, ``A2MIM_TEST_SELF_SIGNAL``) at a
known iteration, and the hook's handler must have seen them before training goes on.
"""
import os
import signal
import socket
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
import torch.multiprocessing as mp
from mmengine.config import Config
from mmengine.runner import Runner

from a2mim_plugin.engine.hooks import (PREEMPTED_EXIT_CODE, AutoResumeHook, Preempted,
                                       PreemptionHook)
from dist_utils import load_state, write_vit_config

HOOKS = [dict(type='AutoResumeHook'), dict(type='WaitForSignalHook'),
         dict(type='PreemptionHook', signals=['SIGTERM', 'SIGUSR1'])]
EPOCHS, PER_EPOCH = 2, 7


def _config(tmp_path: Path, data: Path, hooks=HOOKS, name='vit.py') -> Path:
    return write_vit_config(tmp_path / name, data, batch=4, max_iters=EPOCHS * PER_EPOCH,
                            max_epochs=EPOCHS, drop_path=0.1, accumulate=2, extra_hooks=hooks)


def _train(config: Path, work_dir: Path, tag: str):
    cfg = Config.fromfile(config)
    cfg.work_dir = str(work_dir)
    cfg.experiment_name = f'{work_dir.name}_{tag}'
    runner = Runner.from_cfg(cfg)
    runner.train()
    return runner


def _log(work_dir: Path) -> str:
    return '\n'.join(p.read_text() for p in sorted(work_dir.glob('*/*.log')))


@pytest.fixture(scope='module')
def reference(tmp_path_factory, photo_dataset):
    """The uninterrupted run's final weights (the hooks present, no signal)."""
    root = tmp_path_factory.mktemp('preempt_ref')
    config = _config(root, photo_dataset)
    _train(config, root / 'ref', 'ref')
    return dict(config=config, state=load_state(root / 'ref' / f'epoch_{EPOCHS}.pth'))


def _assert_same_weights(path: Path, reference: dict) -> None:
    state = load_state(path)
    assert state.keys() == reference.keys()
    for name, tensor in reference.items():
        assert torch.equal(state[name], tensor), name


def _preempt(config, work_dir, monkeypatch, at_iter, **env):
    monkeypatch.setenv('A2MIM_TEST_SIGNAL_AT_ITER', str(at_iter))
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    handlers = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGUSR1)}
    with pytest.raises(Preempted) as stopped:
        _train(config, work_dir, 'first')
    assert stopped.value.code == PREEMPTED_EXIT_CODE == 75
    assert {s: signal.getsignal(s) for s in handlers} == handlers, 'handlers restored'
    for key in ['A2MIM_TEST_SIGNAL_AT_ITER', *env]:
        monkeypatch.delenv(key)
    return stopped.value.checkpoint


def test_signal_mid_cycle_stops_at_cycle_end_and_same_command_resumes_bit_exact(
        tmp_path, reference, monkeypatch):
    work_dir = tmp_path / 'run'
    # SIGUSR1 after iteration 3: the middle of the cycle 3-4, so the stop is after 4.
    path = _preempt(reference['config'], work_dir, monkeypatch, 3,
                    A2MIM_TEST_SELF_SIGNAL='SIGUSR1')
    assert path == str(work_dir / 'iter_4.pth')
    assert (work_dir / 'last_checkpoint').read_text() == path
    assert sorted(p.name for p in work_dir.glob('*.pth')) == ['iter_4.pth']
    saved = torch.load(path, map_location='cpu')
    assert (saved['meta']['epoch'], saved['meta']['iter']) == (0, 4)
    assert 'stopped after iteration 4 (SIGUSR1)' in _log(work_dir)

    runner = _train(reference['config'], work_dir, 'again')  # same command, no resume flag
    log = _log(work_dir)
    assert f'AutoResumeHook: resuming from {path}' in log
    assert 'resumed epoch: 0, iter: 4' in log
    assert 'replaying its first 4 batch(es)' in log
    assert runner.iter == EPOCHS * PER_EPOCH
    _assert_same_weights(work_dir / f'epoch_{EPOCHS}.pth', reference['state'])
    assert not (work_dir / 'iter_4.pth').exists(), 'replaced by the epoch checkpoints'


def test_second_signal_during_the_save(tmp_path, reference, monkeypatch):
    """SIGUSR1 after iteration 2 (a cycle end), then SIGUSR1 and SIGTERM in the middle of
    writing the checkpoint: the save completes, the process exits 75 once, and the run resumes
    exactly."""
    work_dir = tmp_path / 'run'
    # Handlers of the test process: any signal that gets past the hook lands here (not in the
    # default action, which would end pytest).
    leaked = []
    previous = {s: signal.signal(s, lambda signum, frame: leaked.append(signum))
                for s in (signal.SIGTERM, signal.SIGUSR1)}
    try:
        path = _preempt(reference['config'], work_dir, monkeypatch, 2,
                        A2MIM_TEST_SELF_SIGNAL='SIGUSR1',
                        A2MIM_TEST_SIGNAL_DURING_SAVE='SIGUSR1,SIGTERM')
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
    assert leaked == [], 'both signals went to the PreemptionHook'
    saved = torch.load(path, map_location='cpu')
    assert saved['meta']['signalled_during_save'] == 'SIGUSR1,SIGTERM'
    assert saved['meta']['iter'] == 2
    assert 'stopped after iteration 2 (SIGUSR1, SIGUSR1, SIGTERM)' in _log(work_dir)
    assert not list(work_dir.glob('.*.partial'))
    _train(reference['config'], work_dir, 'again')
    _assert_same_weights(work_dir / f'epoch_{EPOCHS}.pth', reference['state'])


def test_interval_checkpoints_replace_each_other_and_change_nothing(tmp_path, reference,
                                                                    photo_dataset):
    """A cadence shorter than any step saves at every optimizer step; each such checkpoint
    replaces the previous one and goes once an epoch checkpoint is written."""
    hooks = HOOKS[:2] + [dict(type='PreemptionHook', signals=[], interval_minutes=1e-9)]
    config = _config(tmp_path, photo_dataset, hooks=hooks, name='vit_interval.py')
    work_dir = tmp_path / 'run'
    _train(config, work_dir, 'interval')
    log = _log(work_dir)
    saved = [f'iter_{i}.pth (interval)' for i in range(2, EPOCHS * PER_EPOCH + 1, 2)]
    assert all(f'{work_dir}/{name}' in log for name in saved)
    assert sorted(p.name for p in work_dir.glob('*.pth')) == ['epoch_1.pth', 'epoch_2.pth']
    _assert_same_weights(work_dir / f'epoch_{EPOCHS}.pth', reference['state'])


def test_iteration_loop_stop_on_a_periodic_checkpoint_step(tmp_path, photo_dataset,
                                                            monkeypatch):
    """IterBasedTrainLoop with a checkpoint every 2 iterations (max_keep_ckpts=-1): a stop
    after iteration 4 uses the periodic iter_4.pth (not a second copy that would later be
    deleted as the hook's own), and the same command resumes bit for bit (mmengine skips the
    trained batches itself)."""
    config = write_vit_config(tmp_path / 'vit_iter.py', photo_dataset, batch=4, max_iters=6,
                              drop_path=0.1, extra_hooks=HOOKS)
    _train(config, tmp_path / 'ref', 'ref')
    reference = load_state(tmp_path / 'ref' / 'iter_6.pth')
    work_dir = tmp_path / 'run'
    path = _preempt(config, work_dir, monkeypatch, 4, A2MIM_TEST_SELF_SIGNAL='SIGTERM')
    assert path == str(work_dir / 'iter_4.pth')
    assert 'PreemptionHook: saved' not in _log(work_dir)
    _train(config, work_dir, 'again')
    assert 'resumed epoch: 0, iter: 4' in _log(work_dir)
    assert sorted(p.name for p in work_dir.glob('*.pth')) == ['iter_2.pth', 'iter_4.pth',
                                                              'iter_6.pth']
    _assert_same_weights(work_dir / 'iter_6.pth', reference)


def _agree_worker(rank: int, port: int, flags: list, out) -> None:
    torch.distributed.init_process_group('gloo', init_method=f'tcp://127.0.0.1:{port}',
                                         rank=rank, world_size=2)
    try:
        decisions = [PreemptionHook.agree(*pair) for pair in flags[rank]]
        torch.distributed.barrier()  # both ranks are done before either leaves
        out.put((rank, decisions))
    finally:
        torch.distributed.destroy_process_group()


def test_ranks_agree_with_a_collective():
    """Rank 1 alone got a signal at its 2nd check, rank 0 alone has its time up at the 3rd:
    both ranks get the same decisions at the same checks."""
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        port = s.getsockname()[1]
    flags = [[(False, False), (False, False), (False, True)],
             [(False, False), (True, False), (False, False)]]
    ctx = mp.get_context('spawn')
    out = ctx.Queue()
    procs = [ctx.Process(target=_agree_worker, args=(r, port, flags, out)) for r in (0, 1)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=120)
    results = dict(out.get(timeout=30) for p in procs if p.exitcode == 0)
    expected = [[False, False], [True, False], [False, True]]
    assert results == {0: expected, 1: expected}
    assert [p.exitcode for p in procs] == [0, 0]


def _fake_runner(work_dir: Path, resume=False, load_from=None):
    messages = []
    return SimpleNamespace(work_dir=str(work_dir), _resume=resume, _load_from=load_from,
                           logger=SimpleNamespace(info=messages.append), messages=messages)


def test_auto_resume_only_without_explicit_choice(tmp_path):
    (tmp_path / 'iter_4.pth').write_bytes(b'x')
    runner = _fake_runner(tmp_path)
    AutoResumeHook().before_run(runner)
    assert runner._resume is False and 'no last_checkpoint' in runner.messages[0]

    (tmp_path / 'last_checkpoint').write_text(str(tmp_path / 'iter_4.pth'))
    runner = _fake_runner(tmp_path)
    AutoResumeHook().before_run(runner)
    assert runner._resume is True and str(tmp_path / 'iter_4.pth') in runner.messages[0]

    for explicit in (dict(load_from='pretrained.pth'), dict(resume=True, load_from='x.pth')):
        runner = _fake_runner(tmp_path, **explicit)
        AutoResumeHook().before_run(runner)
        assert (runner._resume, runner._load_from) == (explicit.get('resume', False),
                                                       explicit['load_from'])
        assert runner.messages == []

    (tmp_path / 'last_checkpoint').write_text(str(tmp_path / 'gone.pth'))
    with pytest.raises(FileNotFoundError, match='gone.pth, which does not exist'):
        AutoResumeHook().before_run(_fake_runner(tmp_path))


def test_bad_settings_name_the_key():
    with pytest.raises(ValueError, match="'SIGKILL' is not a signal that can be handled"):
        PreemptionHook(signals=['SIGKILL'])
    with pytest.raises(ValueError, match='interval_minutes must be a positive'):
        PreemptionHook(interval_minutes=0)
    assert PreemptionHook(signals=['sigusr2']).signals == [int(signal.SIGUSR2)]
    assert os.EX_TEMPFAIL == PREEMPTED_EXIT_CODE


CONFIGS = Path(__file__).resolve().parents[2] / 'configs'
PRETRAIN = sorted(p for d in ('a2mim', 'simmim_baselines') for p in (CONFIGS / d).glob('*.py'))


@pytest.mark.parametrize('path', PRETRAIN, ids=lambda p: p.stem)
def test_every_pretrain_config_saves_on_signal_and_resumes_by_itself(path):
    cfg = Config.fromfile(path)
    hooks = cfg.custom_hooks
    assert hooks[-1] == dict(type='PreemptionHook', signals=['SIGTERM', 'SIGUSR1'],
                             interval_minutes=30), 'PreemptionHook must come last'
    types = [h['type'] for h in hooks]
    assert 'AutoResumeHook' in types and 'RNGStateHook' in types
    assert cfg.default_hooks.checkpoint.type == 'AtomicCheckpointHook'
    assert cfg.get('resume', False) is False and cfg.get('load_from') is None


def test_pretrain_config_list_covers_the_inheriting_ones():
    names = {p.stem for p in PRETRAIN}
    assert len(names) >= 24  # 13 A2MIM rows + 11 SimMIM baselines today
    # these two inherit the Swin-B config, not default_runtime_pretrain directly
    assert {'a2mim_swin-tiny-w6_8xb128-accu2-coslr-100e_in1k-192px',
            'a2mim-simmim_swin-tiny-w6_8xb128-accu2-coslr-100e_in1k-192px'} <= names
