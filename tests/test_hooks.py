"""RNGStateHook and AtomicCheckpointHook in the cases the training tests do not reach.

* RNGStateHook: a resumed checkpoint without RNG states (older runs), ``load_from`` without
  resume, and the restore on a rank > 0.
* AtomicCheckpointHook: the stock fallback for a storage backend that is not local, and a
  second save of a step that is already saved.

The runs use MMEngine's ``Runner`` in this process with a toy model and a dataset that draws
from numpy and torch in ``__getitem__`` (as random crops and masks do), so the batches of a run
show which generator states it had.
"""
import contextlib
import io
import logging
import os
from pathlib import Path
from typing import Dict, List, Optional

import numpy as np
import pytest
import torch
from mmengine.fileio.backends import BaseStorageBackend, register_backend
from mmengine.hooks import CheckpointHook, Hook
from mmengine.logging import MMLogger
from mmengine.model import BaseModel
from mmengine.runner import Runner
from torch.utils.data import Dataset

from a2mim_plugin.engine.hooks import AtomicCheckpointHook, RNGStateHook
from a2mim_plugin.engine.hooks import rng_state_hook
from a2mim_plugin.engine.hooks.rng_state_hook import RNG_KEY, _NOT_LOADED, get_rng_state
from log_capture import captured_logs
from log_capture import messages as messages_of


class _RandomDataset(Dataset):
    """Each item draws from numpy's and torch's global generators."""

    def __len__(self) -> int:
        return 8

    def __getitem__(self, index: int) -> dict:
        noise = torch.rand(2) + float(np.random.rand())
        return dict(inputs=torch.full((2,), float(index)) + noise)


class _ToyModel(BaseModel):
    """A linear layer behind dropout: training draws from torch's generator (as drop-path
    does), which mmengine's resume skip of the trained batches does not replay."""

    def __init__(self) -> None:
        super().__init__()
        self.dropout = torch.nn.Dropout(0.5)
        self.linear = torch.nn.Linear(2, 1)

    def forward(self, inputs, data_samples=None, mode='tensor'):
        out = self.linear(self.dropout(torch.stack(inputs)))
        return dict(loss=out.pow(2).mean()) if mode == 'loss' else out


class _BatchRecorder(Hook):
    """Keeps the inputs of every trained batch, by iteration."""

    priority = 'LOWEST'

    def __init__(self) -> None:
        self.batches: Dict[int, torch.Tensor] = {}

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None) -> None:
        self.batches[runner.iter + 1] = torch.stack(data_batch['inputs']).clone()


def _runner(work_dir: Path, *, max_iters: int = 4, hooks: List = (),
            checkpoint: Optional[dict] = None, **runner_kwargs) -> Runner:
    """A Runner for the toy model, checkpoints every 2 iterations unless ``checkpoint``."""
    return Runner(
        model=_ToyModel(), work_dir=str(work_dir),
        train_dataloader=dict(batch_size=2, num_workers=0,
                              sampler=dict(type='DefaultSampler', shuffle=True),
                              dataset=_RandomDataset()),
        optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.1)),
        train_cfg=dict(by_epoch=False, max_iters=max_iters),
        default_hooks=dict(checkpoint=checkpoint or dict(
            type='AtomicCheckpointHook', interval=2, by_epoch=False)),
        custom_hooks=list(hooks), randomness=dict(seed=0), default_scope='mmpretrain',
        log_level='WARNING', **runner_kwargs)


def _train(work_dir: Path, *, rng_hook: bool = True, **kwargs) -> Dict[int, torch.Tensor]:
    """Train the toy model (see :func:`_runner`); return the batches it trained on."""
    recorder = _BatchRecorder()
    hooks: List = [recorder] + ([RNGStateHook()] if rng_hook else [])
    _runner(work_dir, hooks=hooks, **kwargs).train()
    return recorder.batches


@contextlib.contextmanager
def _warnings():
    """The WARNING messages of every MMEngine logger while the block runs (a runner built in
    the block logs to a new instance named after its start second)."""
    with captured_logs(logging.WARNING) as records:
        yield records


@pytest.fixture(scope='module')
def reference(tmp_path_factory):
    """4 uninterrupted iterations with checkpoints (and RNG states) at 2 and 4."""
    work_dir = tmp_path_factory.mktemp('reference')
    batches = _train(work_dir)
    ckpt = torch.load(work_dir / 'iter_2.pth', map_location='cpu')
    assert ckpt[RNG_KEY]['world_size'] == 1 and len(ckpt[RNG_KEY]['states']) == 1
    return dict(work_dir=work_dir, batches=batches)


def _equal(a: Dict[int, torch.Tensor], b: Dict[int, torch.Tensor], steps) -> bool:
    return all(torch.equal(a[s], b[s]) for s in steps)


# ---------------------------------------------------------------------------- RNGStateHook
def test_resume_restores_the_states(reference, tmp_path):
    """The baseline the cases below differ from: resumed at 2, iterations 3 and 4 see the
    batches of the uninterrupted run."""
    batches = _train(tmp_path, resume=True,
                     load_from=str(reference['work_dir'] / 'iter_2.pth'))
    assert sorted(batches) == [3, 4]
    assert _equal(batches, reference['batches'], (3, 4))


def test_resume_from_a_checkpoint_without_rng_states(reference, tmp_path):
    """An older checkpoint: a warning, the generators continue from the seed (exactly as
    without the hook), and the run finishes."""
    ckpt = torch.load(reference['work_dir'] / 'iter_2.pth', map_location='cpu')
    del ckpt[RNG_KEY]
    old = tmp_path / 'old_iter_2.pth'
    torch.save(ckpt, old)

    with _warnings() as records:
        with_hook = _train(tmp_path / 'with_hook', resume=True, load_from=str(old))
    warnings = messages_of(records)
    assert any('holds no RNG states' in m for m in warnings), warnings
    without_hook = _train(tmp_path / 'without_hook', resume=True, load_from=str(old),
                          rng_hook=False)
    assert sorted(with_hook) == sorted(without_hook) == [3, 4]
    assert _equal(with_hook, without_hook, (3, 4))
    assert not _equal(with_hook, reference['batches'], (3,))
    # the checkpoints it writes hold states again
    assert RNG_KEY in torch.load(tmp_path / 'with_hook' / 'iter_4.pth', map_location='cpu')


def test_load_from_leaves_the_generators_alone(reference, tmp_path):
    """``load_from`` without resume starts a new run: it draws what a fresh run draws, not
    the states stored in the checkpoint."""
    fresh = _train(tmp_path / 'fresh', max_iters=2)
    loaded = _train(tmp_path / 'loaded', max_iters=2,
                    load_from=str(reference['work_dir'] / 'iter_2.pth'))
    assert sorted(loaded) == [1, 2]
    assert _equal(loaded, fresh, (1, 2))
    assert _equal(loaded, reference['batches'], (1, 2))  # same seed, same start


def test_load_from_forgets_the_loaded_states():
    """The states loaded for ``load_from`` are dropped at the first epoch, not kept for later."""
    class Loop:
        iter = epoch = 0

    class FakeRunner:
        train_loop = Loop()

    hook = RNGStateHook()
    hook.after_load_checkpoint(FakeRunner(), {RNG_KEY: dict(world_size=1,
                                                            states=[get_rng_state()])})
    before = get_rng_state()
    hook.before_train_epoch(FakeRunner())
    assert hook._loaded is _NOT_LOADED
    assert torch.equal(get_rng_state()['torch'], before['torch'])


@pytest.mark.parametrize('saved_world_size,expected', [(2, 'rank1'), (4, None), (1, None)])
def test_rank_1_gets_its_own_state_or_none(monkeypatch, saved_world_size, expected):
    """With the checkpoint's world size each rank gets its own state; otherwise rank 1 keeps
    its seed (only rank 0's state is meaningful then), and only rank 0 warns."""
    monkeypatch.setattr(rng_state_hook, 'get_dist_info', lambda: (1, 2))
    hook = RNGStateHook()
    states = [f'rank{r}' for r in range(saved_world_size)]
    hook.after_load_checkpoint(None, {RNG_KEY: dict(world_size=saved_world_size,
                                                    states=states)})
    with _warnings() as records:
        assert hook._own_state(None) == expected
    assert messages_of(records) == []
    assert hook._loaded is _NOT_LOADED


def test_rank_1_restores_after_the_resume_skip(monkeypatch):
    """The iteration-based restore on rank 1: its state is set right before the first batch
    after mmengine's skip of the already trained ones."""
    monkeypatch.setattr(rng_state_hook, 'get_dist_info', lambda: (1, 2))
    torch.manual_seed(1)
    rank1 = get_rng_state()
    expected = torch.rand(3)
    torch.manual_seed(0)

    class Loop:
        epoch = 0

    class FakeRunner:
        train_loop = Loop()

    FakeRunner.train_loop.dataloader_iterator = iter(range(10))
    FakeRunner.train_loop.iter = 2  # resumed at iteration 2

    hook = RNGStateHook()
    hook.after_load_checkpoint(None, {RNG_KEY: dict(world_size=2,
                                                    states=[get_rng_state(), rank1])})
    hook.before_train_epoch(FakeRunner())
    loop = FakeRunner.train_loop
    assert [next(loop.dataloader_iterator) for _ in range(2)] == [0, 1]  # the skip
    assert next(loop.dataloader_iterator) == 2
    assert torch.equal(torch.rand(3), expected)


def test_rank_1_sends_its_state_to_the_checkpoint(monkeypatch):
    """With 2 processes the states are gathered on checkpoint iterations only, and the
    checkpoint holds both, in rank order."""
    gathered = []
    monkeypatch.setattr(rng_state_hook, 'get_dist_info', lambda: (1, 2))
    monkeypatch.setattr(rng_state_hook, 'all_gather_object',
                        lambda obj: gathered.append(obj) or ['rank0', obj])

    class FakeRunner:
        iter = 1  # after_train_iter of iteration 2
        train_loop = None

    ckpt_hook = CheckpointHook(interval=2, by_epoch=False)
    FakeRunner.hooks = [ckpt_hook]
    FakeRunner.max_iters = 10
    hook = RNGStateHook()
    hook.after_train_iter(FakeRunner(), 1)
    assert len(gathered) == 1
    checkpoint = {}
    hook.before_save_checkpoint(FakeRunner(), checkpoint)
    assert checkpoint[RNG_KEY]['world_size'] == 2
    assert checkpoint[RNG_KEY]['states'][0] == 'rank0'
    assert torch.equal(checkpoint[RNG_KEY]['states'][1]['torch'], gathered[0]['torch'])
    FakeRunner.iter = 2  # iteration 3: no checkpoint, no collective call
    hook.after_train_iter(FakeRunner(), 2)
    assert len(gathered) == 1


# --------------------------------------------------------------------- AtomicCheckpointHook
class _MemoryBackend(BaseStorageBackend):
    """A non-local storage backend (think object store) that keeps files in a dict."""

    files: Dict[str, bytes] = {}

    def get(self, filepath) -> bytes:
        return self.files[str(filepath)]

    def get_text(self, filepath, encoding='utf-8') -> str:
        return self.get(filepath).decode(encoding)

    def put(self, obj: bytes, filepath) -> None:
        self.files[str(filepath)] = obj

    def put_text(self, obj: str, filepath, encoding='utf-8') -> None:
        self.put(obj.encode(encoding), filepath)

    def exists(self, filepath) -> bool:
        return str(filepath) in self.files

    def isfile(self, filepath) -> bool:
        return self.exists(filepath)

    def isdir(self, filepath) -> bool:
        return False

    def remove(self, filepath) -> None:
        del self.files[str(filepath)]

    def join_path(self, filepath, *filepaths) -> str:
        return '/'.join([str(filepath).rstrip('/'), *map(str, filepaths)])


@pytest.fixture
def memory_backend():
    register_backend('a2mim_test_memory', _MemoryBackend, force=True)
    _MemoryBackend.files = {}
    yield _MemoryBackend.files
    _MemoryBackend.files = {}


def test_non_local_storage_keeps_the_stock_behaviour(tmp_path, memory_backend):
    """No temporary names on an object store: the checkpoint goes to its final key through
    the backend, old ones are removed there, and the local pointer names the final key."""
    _train(tmp_path, checkpoint=dict(
        type='AtomicCheckpointHook', interval=2, by_epoch=False, max_keep_ckpts=1,
        out_dir='a2mim-bucket', backend_args=dict(backend='a2mim_test_memory')))
    final = f'a2mim-bucket/{tmp_path.name}/iter_4.pth'
    assert sorted(memory_backend) == [final]  # iter_2 removed, no '.partial' key
    ckpt = torch.load(io.BytesIO(memory_backend[final]), map_location='cpu')
    assert ckpt['meta']['iter'] == 4 and RNG_KEY in ckpt
    assert (tmp_path / 'last_checkpoint').read_text() == final
    assert not list(tmp_path.glob('*.pth')) and not list(tmp_path.glob('.*partial'))


def test_local_storage_is_atomic(tmp_path):
    """The contrast: locally the hook does take its atomic path."""
    hook = AtomicCheckpointHook(interval=2, by_epoch=False)

    class FakeRunner:
        work_dir = str(tmp_path)
        logger = MMLogger.get_current_instance()
        message_hub = None

    hook.before_train(FakeRunner())
    assert hook._atomic()


class _FileWatcher(Hook):
    """Records which of ``paths`` exist when the first iteration starts."""

    def __init__(self, paths: List[Path]) -> None:
        self.paths, self.present = paths, None

    def before_train_iter(self, runner, batch_idx, data_batch=None) -> None:
        if self.present is None:
            self.present = [p.name for p in self.paths if p.exists()]


def test_partial_files_of_a_killed_write_are_removed_at_start(tmp_path):
    """A job killed while writing leaves hidden ``.<name>.partial`` files (names this run
    never writes itself: steps 6 and 8); the next run removes them before its first
    iteration, with a warning naming each, and leaves every other file alone."""
    run_dir = tmp_path / 'run'
    run_dir.mkdir()
    stale = [run_dir / '.iter_6.pth.partial', run_dir / '.iter_8.pth.partial']
    others = [run_dir / 'notes.partial', run_dir / '.iter_6.pth', run_dir / 'iter_1.pth']
    for path in stale + others:
        path.write_bytes(b'truncated')
    watcher = _FileWatcher(stale + others)
    with _warnings() as records:
        _runner(run_dir, max_iters=2, hooks=[watcher]).train()
    assert watcher.present == [p.name for p in others]
    assert not any(p.exists() for p in stale)
    assert sorted(p.name for p in run_dir.glob('*.partial')) == ['notes.partial']
    assert (run_dir / 'iter_2.pth').is_file()  # this run's own checkpoint, renamed in place
    assert all(p.read_bytes() == b'truncated' for p in others)
    removed = [m for m in messages_of(records) if 'did not finish' in m]
    assert sorted(removed) == sorted(f'Removing {p}, left by a checkpoint write that did not '
                                     'finish.' for p in stale)


@pytest.mark.parametrize('max_keep', [1, 2])
def test_saving_an_already_saved_step_again(tmp_path, max_keep):
    """A second save of the step just saved (mmengine guards the same case: ``save_last``
    and an interval save, or a best-checkpoint save, in one step) replaces the file and
    deletes nothing: not the file itself, and not an older one it would count twice."""
    checkpoint = dict(type='AtomicCheckpointHook', interval=2, by_epoch=False,
                      max_keep_ckpts=max_keep, save_last=True)
    run_dir = tmp_path / 'run'
    # 3 iterations: the interval save at 2 and the save_last at 3
    runner = _runner(run_dir, max_iters=3, checkpoint=checkpoint)
    runner.train()
    hook = next(h for h in runner.hooks if isinstance(h, AtomicCheckpointHook))
    kept = [2, 3][-max_keep:]
    assert list(hook.keep_ckpt_ids) == kept
    assert sorted(p.name for p in run_dir.glob('iter_*.pth')) == \
        [f'iter_{s}.pth' for s in kept]
    before = os.stat(run_dir / 'iter_3.pth').st_ino

    hook._save_checkpoint_with_step(runner, 3, meta=dict(epoch=0, iter=3))

    assert list(hook.keep_ckpt_ids) == kept, 'the step was counted twice'
    assert sorted(p.name for p in run_dir.glob('iter_*.pth')) == \
        [f'iter_{s}.pth' for s in kept]
    assert os.stat(run_dir / 'iter_3.pth').st_ino != before  # replaced by a rename
    assert torch.load(run_dir / 'iter_3.pth', map_location='cpu')['meta']['iter'] == 3
    assert (run_dir / 'last_checkpoint').read_text() == str(run_dir / 'iter_3.pth')
    assert not list(run_dir.glob('.*partial'))
