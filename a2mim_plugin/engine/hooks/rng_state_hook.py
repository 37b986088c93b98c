"""Save and restore the random generators with runner checkpoints.

mmengine checkpoints hold the model, the optimizer, the schedulers and the loop counters, but
not the state of the random generators, so a resumed run draws other crops, other masks and
other drop-path decisions than the run it continues. :class:`RNGStateHook` adds them.
"""
import random
from typing import Any, Dict, List, Optional

import numpy as np
import torch
from mmengine.dist import all_gather_object, get_dist_info
from mmengine.hooks import CheckpointHook, Hook
from mmengine.logging import print_log
from mmpretrain.registry import HOOKS

RNG_KEY = 'rng_states'
_NOT_LOADED = object()


def get_rng_state() -> Dict[str, Any]:
    """The states of python ``random``, numpy's global generator, torch CPU and CUDA."""
    state = dict(python=random.getstate(), numpy=np.random.get_state(),
                 torch=torch.get_rng_state())
    if torch.cuda.is_available() and torch.cuda.device_count() > 0:
        state['cuda'] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: Dict[str, Any]) -> None:
    """Inverse of :func:`get_rng_state` (a missing CUDA entry leaves CUDA alone)."""
    random.setstate(_as_python_state(state['python']))
    np.random.set_state(state['numpy'])
    torch.set_rng_state(torch.as_tensor(state['torch'], dtype=torch.uint8))
    if 'cuda' in state and torch.cuda.is_available():
        cuda = state['cuda']
        if len(cuda) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all(cuda)


def _as_python_state(state) -> tuple:
    """``random.setstate`` wants tuples; a pickled state comes back as saved, but be lenient."""
    version, internal, gauss = state
    return version, tuple(internal), gauss


class _RestoreAfterSkip:
    """Iterator proxy that restores the RNG states right before the first new batch.

    On resume, mmengine's ``IterBasedTrainLoop.run`` first calls ``next()`` on its data
    iterator ``iter`` times to skip the batches already trained on; that replays the sampler
    and the data pipeline (and draws random numbers). The saved states belong to the moment
    after those batches, so they are set when the skipping is over: at the next call, which
    draws the first batch that is actually trained on. The proxy then removes itself.
    """

    def __init__(self, loop, inner, skip: int, state: Dict[str, Any]) -> None:
        self._loop, self._inner, self._left, self._state = loop, inner, skip, state

    def __iter__(self):
        return self

    def __next__(self):
        if self._left > 0:
            self._left -= 1
            return next(self._inner)
        set_rng_state(self._state)
        self._loop.dataloader_iterator = self._inner
        return next(self._inner)


@HOOKS.register_module()
class RNGStateHook(Hook):
    """Keep python ``random``, numpy, torch CPU (and CUDA) generator states in checkpoints.

    Saving: at every checkpoint the states are written to ``checkpoint['rng_states']`` as
    ``dict(world_size=N, states=[state of rank 0, ..., state of rank N-1])``. Only rank 0
    writes checkpoints, so with several processes the ranks exchange their states (one
    ``all_gather_object``) in ``after_train_iter`` / ``after_train_epoch`` of the iterations
    where a :class:`~mmengine.hooks.CheckpointHook` is going to save. The hook's priority (80)
    puts that right before the checkpoint hook (VERY_LOW, 90) and after every other default
    hook, so the states are those of the moment the checkpoint is written.

    Restoring (``--resume`` only; ``load_from`` without resume leaves the generators alone):

    * iteration-based loops: after mmengine has skipped the already trained batches and
      right before the first new batch is drawn (see :class:`_RestoreAfterSkip`);
    * epoch-based loops: in ``before_train_epoch`` of the first epoch after the resume
      (exact for checkpoints written at epoch ends, which is what mmengine resumes from).

    Each rank gets its own state back when the world size matches the checkpoint's; otherwise
    only rank 0's state is known, and rank 0 gets it while other ranks keep their seeds.

    With ``num_workers=0`` the whole run is reproduced bit for bit (tested). Worker processes
    keep their own generators, which are not in the checkpoint: mmengine's ``worker_init_fn``
    seeds them from ``randomness.seed``, the rank and the worker id, and torch adds a base
    seed drawn from the main process's generator when the data iterator is created (at the
    same point of a fresh and of a resumed run). Because mmengine's resume skip replays the
    already used batches through the workers, their streams end where the killed run's
    were; with a fixed ``randomness.seed`` and ``num_workers=2`` this also gave bit-identical
    weights in a manual check (other set-ups were not checked).
    """

    priority = 80  # after LOW (70) hooks, before the CheckpointHook (VERY_LOW, 90)

    def __init__(self) -> None:
        self._gathered: Optional[List[Dict[str, Any]]] = None
        self._loaded: Any = _NOT_LOADED  # checkpoint[RNG_KEY] (None if absent) until used

    # ------------------------------------------------------------------ saving
    def _gather_if_saving(self, runner, saving: bool) -> None:
        _, world_size = get_dist_info()
        self._gathered = None
        if world_size > 1 and saving:
            self._gathered = all_gather_object(get_rng_state())

    def after_train_iter(self, runner, batch_idx: int, data_batch=None, outputs=None) -> None:
        saving = any(
            not hook.by_epoch and (
                hook.every_n_train_iters(runner, hook.interval, hook.save_begin)
                or (hook.save_last and hook.is_last_train_iter(runner)))
            for hook in self._checkpoint_hooks(runner))
        self._gather_if_saving(runner, saving)

    def after_train_epoch(self, runner) -> None:
        saving = any(
            hook.by_epoch and (
                hook.every_n_epochs(runner, hook.interval, hook.save_begin)
                or (hook.save_last and hook.is_last_train_epoch(runner)))
            for hook in self._checkpoint_hooks(runner))
        self._gather_if_saving(runner, saving)

    def gather_now(self) -> None:
        """Collect every rank's states for a checkpoint written off the checkpoint hooks'
        schedule (``PreemptionHook``); a collective: all ranks call it."""
        self._gather_if_saving(None, True)

    @staticmethod
    def _checkpoint_hooks(runner) -> list:
        return [hook for hook in runner.hooks if isinstance(hook, CheckpointHook)]

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        _, world_size = get_dist_info()
        states = self._gathered if self._gathered is not None else [get_rng_state()]
        checkpoint[RNG_KEY] = dict(world_size=world_size, states=states)

    # --------------------------------------------------------------- restoring
    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        self._loaded = checkpoint.get(RNG_KEY)  # None: an older checkpoint without states

    def _own_state(self, runner) -> Optional[Dict[str, Any]]:
        saved, self._loaded = self._loaded, _NOT_LOADED
        if saved is None:
            print_log('RNGStateHook: the resumed checkpoint holds no RNG states; the random '
                      'generators continue from the seed.', logger='current', level=30)
            return None
        rank, world_size = get_dist_info()
        states = saved['states']
        if saved['world_size'] == world_size and len(states) == world_size:
            return states[rank]
        if rank == 0:
            print_log(f'RNGStateHook: checkpoint written by {saved["world_size"]} process(es) '
                      f'with {len(states)} RNG state(s), now {world_size}: only rank 0 gets '
                      'its state back.', logger='current', level=30)
            return states[0]
        return None

    def before_train_epoch(self, runner) -> None:
        if self._loaded is _NOT_LOADED:
            return
        loop = runner.train_loop
        if loop.iter == 0 and loop.epoch == 0:  # load_from, not a resume
            self._loaded = _NOT_LOADED
            return
        state = self._own_state(runner)
        if state is None:
            return
        if hasattr(loop, 'dataloader_iterator'):  # IterBasedTrainLoop: restore after the skip
            loop.dataloader_iterator = _RestoreAfterSkip(loop, loop.dataloader_iterator,
                                                         loop.iter, state)
        else:
            set_rng_state(state)
