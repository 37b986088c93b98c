"""Save a checkpoint and exit when the job is told to stop (Slurm time limit, preemption).

Clusters announce the end of a job with a signal (Slurm: ``--signal=USR1@<seconds>`` before the
time limit, SIGTERM on preemption or at the limit, SIGKILL ``KillWait`` seconds later).
mmengine 0.10.7 and MMPretrain 1.2.0 install no handler, so the default action kills the
process wherever it is and everything since the last periodic checkpoint is lost.

:class:`PreemptionHook` turns the signal into a flag. At the end of the next optimizer step
(never inside a gradient-accumulation cycle) all ranks agree on the flag with one collective,
rank 0 writes ``iter_<N>.pth`` atomically (through the ``AtomicCheckpointHook``, RNG states of
every rank included), all ranks wait for the write and exit with :data:`PREEMPTED_EXIT_CODE`.

It also makes a checkpoint written in the middle of an epoch resumable: mmengine's
``EpochBasedTrainLoop`` restarts an epoch from its first batch, so on such a resume the hook
replays the epoch's already trained batches through the data loader (same sampler order, same
data-pipeline random draws) without training on them, and puts the saved random generator
states back right before the first new batch is drawn.
"""
import os
import os.path as osp
import signal
import threading
import time
from typing import Any, Dict, List, Optional, Sequence

import torch
from mmengine.dist import all_reduce, barrier, get_dist_info, is_main_process
from mmengine.hooks import Hook
from mmengine.logging import print_log
from mmengine.optim import OptimWrapperDict
from mmengine.runner import EpochBasedTrainLoop
from mmpretrain.registry import HOOKS

from .atomic_checkpoint_hook import AtomicCheckpointHook
from .rng_state_hook import RNGStateHook, get_rng_state, set_rng_state

# sysexits.h EX_TEMPFAIL: "temporary failure, the user is invited to retry". The batch script
# tools/slurm_pretrain.sh requeues the job when the training step ends with it.
PREEMPTED_EXIT_CODE = 75
INTERIM_KEY = 'interim_ckpt'  # message-hub entry: the last checkpoint this hook wrote


class Preempted(SystemExit):
    """Raised on every rank after the signal checkpoint is on disk (exit status 75)."""

    def __init__(self, checkpoint: str) -> None:
        super().__init__(PREEMPTED_EXIT_CODE)
        self.checkpoint = checkpoint


class _ReplayThenRestore:
    """Data loader proxy for the resumed epoch: its iterator yields every batch of the epoch,
    and sets the saved RNG state right before drawing batch ``replay`` (the first new one)."""

    def __init__(self, loader, replay: int, state: Dict[str, Any]) -> None:
        self.loader, self._replay, self._state = loader, replay, state

    def __len__(self) -> int:
        return len(self.loader)

    def __getattr__(self, name: str):
        return getattr(self.loader, name)

    def __iter__(self):
        batches = iter(self.loader)
        for _ in range(self._replay):
            yield next(batches)
        set_rng_state(self._state)
        yield from batches


class _SkipTrained:
    """``run_iter`` for the resumed epoch: batches before ``first`` were already trained."""

    def __init__(self, run_iter, first: int) -> None:
        self._run_iter, self._first = run_iter, first

    def __call__(self, idx: int, data_batch) -> None:
        if idx >= self._first:
            self._run_iter(idx, data_batch)


@HOOKS.register_module()
class PreemptionHook(Hook):
    """Checkpoint at the next optimizer step after a signal (or every few minutes) and exit.

    Put it last in ``custom_hooks``: it runs after every other hook of the iteration (lowest
    priority), and after a stop nothing else runs. It needs an ``AtomicCheckpointHook`` (it
    writes through it; its ``out_dir``, ``last_checkpoint`` and file backend) and uses the
    ``RNGStateHook`` when there is one.

    On a signal in ``signals``: the handler only sets a flag (a second signal, e.g. during the
    save, only sets it again). After the next iteration that ends an optimizer step
    (``accumulative_counts`` cycles included) the ranks take the maximum of their flags
    (``all_reduce``), so they all stop after the same iteration: the RNG states are gathered,
    rank 0 writes ``iter_<N>.pth`` and ``last_checkpoint`` atomically, every rank waits for it
    (``barrier``), restores the previous signal handlers and raises :class:`Preempted`
    (``SystemExit(75)``). A run started again in the same ``work_dir`` with ``resume``
    (or :class:`AutoResumeHook`) continues from there bit for bit.

    With ``interval_minutes``, the same agreement also writes ``iter_<N>.pth`` (without stopping)
    at the first optimizer step after that many minutes since the start or the last such save,
    so a hard kill (SIGKILL, node failure) loses at most that much. Each rank keeps its own
    clock; the agreement saves on all ranks at the step where any rank's time is up.

    Each checkpoint written by this hook replaces the previous one it wrote (kept in the message
    hub, so across resumes too), and is deleted once the ``AtomicCheckpointHook`` has written a
    newer one; periodic checkpoints follow ``max_keep_ckpts`` as before.

    Args:
        signals: names of the signals that request a stop (``'SIGTERM'``, ``'SIGUSR1'``, ...).
            An empty list installs no handler.
        interval_minutes: write a checkpoint every this many minutes of training; None for none.
    """

    priority = 'LOWEST'

    def __init__(self, signals: Sequence[str] = ('SIGTERM', 'SIGUSR1'),
                 interval_minutes: Optional[float] = None) -> None:
        self.signals = [self._signal_number(name) for name in signals]
        if interval_minutes is not None and not interval_minutes > 0:
            raise ValueError(f'PreemptionHook: interval_minutes must be a positive number of '
                             f'minutes or None, got {interval_minutes!r} (custom_hooks entry '
                             f"type='PreemptionHook', key interval_minutes).")
        self.interval_s = None if interval_minutes is None else 60. * interval_minutes
        self.received: List[int] = []  # signal numbers, in order of arrival
        self._previous: Dict[int, Any] = {}
        self._last_save = time.monotonic()

    @staticmethod
    def _signal_number(name: str) -> int:
        number = getattr(signal, str(name).upper(), None)
        if not isinstance(number, signal.Signals) or number in (signal.SIGKILL, signal.SIGSTOP):
            raise ValueError(f'PreemptionHook: {name!r} is not a signal that can be handled '
                             '(custom_hooks entry type=\'PreemptionHook\', key signals: use '
                             "names such as 'SIGTERM', 'SIGUSR1').")
        return int(number)

    # ------------------------------------------------------------- handlers
    def _on_signal(self, signum: int, frame) -> None:
        self.received.append(signum)

    def before_run(self, runner) -> None:
        self.received = []
        if self.signals and threading.current_thread() is not threading.main_thread():
            runner.logger.warning('PreemptionHook: the runner is not in the main thread, where '
                                  'Python handles signals; no signal handler installed.')
            return
        for signum in self.signals:
            self._previous[signum] = signal.signal(signum, self._on_signal)
        if self.signals:
            names = ', '.join(signal.Signals(s).name for s in self.signals)
            runner.logger.info(f'PreemptionHook: on {names} the run saves at the end of the '
                               f'current optimizer step and exits with {PREEMPTED_EXIT_CODE}.')

    def _restore_handlers(self) -> None:
        for signum, previous in self._previous.items():
            signal.signal(signum, previous if previous is not None else signal.SIG_DFL)
        self._previous = {}

    def after_run(self, runner) -> None:
        self._restore_handlers()

    # -------------------------------------------------------------- training
    def before_train(self, runner) -> None:
        checkpoint_hook = self._hook_of(runner, AtomicCheckpointHook)
        if checkpoint_hook is None or not checkpoint_hook._atomic():
            raise ValueError('PreemptionHook writes its checkpoints through an '
                             'AtomicCheckpointHook on a local out_dir: set default_hooks.'
                             "checkpoint.type='AtomicCheckpointHook' (no remote backend_args).")
        self._last_save = time.monotonic()

    def before_train_epoch(self, runner) -> None:
        loop = runner.train_loop
        if not isinstance(loop, EpochBasedTrainLoop):
            return  # IterBasedTrainLoop skips trained batches itself on resume
        done = loop.iter - loop.epoch * len(loop.dataloader)
        if done <= 0:
            return
        runner.logger.info(f'PreemptionHook: resuming in the middle of epoch {loop.epoch + 1}: '
                           f'replaying its first {done} batch(es) without training on them.')
        # The RNGStateHook (priority 80) has just set the saved states; they belong right
        # before batch `done`, after the replay.
        loop.dataloader = _ReplayThenRestore(loop.dataloader, done, get_rng_state())
        loop.run_iter = _SkipTrained(loop.run_iter, done)

    def after_train_epoch(self, runner) -> None:
        loop = runner.train_loop
        if isinstance(loop.dataloader, _ReplayThenRestore):
            loop.dataloader = loop.dataloader.loader
            del loop.run_iter  # back to the class's method
        self._drop_stale_interim(runner)

    def after_train_iter(self, runner, batch_idx: int, data_batch=None, outputs=None) -> None:
        self._drop_stale_interim(runner)
        if not self._ends_optimizer_step(runner):
            return
        stop, save = self.agree(bool(self.received), self._time_is_up())
        if not (stop or save):
            return
        path = self._save(runner, reason='signal' if stop else 'interval')
        if stop:
            barrier()  # nobody leaves before rank 0 has written
            self._restore_handlers()
            names = ', '.join(signal.Signals(s).name for s in self.received) or 'another rank'
            runner.logger.info(f'PreemptionHook: stopped after iteration {runner.iter + 1} '
                               f'({names}); saved {path}; exiting with {PREEMPTED_EXIT_CODE}.')
            raise Preempted(path)

    @staticmethod
    def _ends_optimizer_step(runner) -> bool:
        wrapper = runner.optim_wrapper
        wrappers = wrapper.values() if isinstance(wrapper, OptimWrapperDict) else [wrapper]
        return all(w.should_update() for w in wrappers)

    def _time_is_up(self) -> bool:
        return self.interval_s is not None and \
            time.monotonic() - self._last_save >= self.interval_s

    @staticmethod
    def agree(stop: bool, save: bool) -> List[bool]:
        """``[stop, save]``, each True on every rank if it is True on any (a collective)."""
        _, world_size = get_dist_info()
        if world_size == 1:
            return [stop, save]
        flags = torch.tensor([int(stop), int(save)])
        all_reduce(flags, op='max')
        return [bool(flags[0]), bool(flags[1])]

    # --------------------------------------------------------------- saving
    def _save(self, runner, reason: str) -> str:
        checkpoint_hook = self._hook_of(runner, AtomicCheckpointHook)
        name = f'iter_{runner.iter + 1}.pth'
        path = osp.join(checkpoint_hook.out_dir, name)
        if runner.message_hub.get_info('last_ckpt') == path:
            self._last_save = time.monotonic()
            return path  # the periodic (by-iteration) checkpoint of this very step
        rng_hook = self._hook_of(runner, RNGStateHook)
        if rng_hook is not None:
            rng_hook.gather_now()
        previous = runner.message_hub.get_info(INTERIM_KEY)
        runner.message_hub.update_info(INTERIM_KEY, path)
        checkpoint_hook.save_atomically(runner, name, by_epoch=False)
        if is_main_process():
            if previous and previous != path and osp.isfile(previous):
                os.remove(previous)
            runner.logger.info(f'PreemptionHook: saved {path} ({reason}).')
        self._last_save = time.monotonic()
        return path

    def _drop_stale_interim(self, runner) -> None:
        """Delete this hook's last checkpoint once a newer periodic one is named last."""
        interim = runner.message_hub.get_info(INTERIM_KEY)
        if not interim or runner.message_hub.get_info('last_ckpt') == interim:
            return
        runner.message_hub.update_info(INTERIM_KEY, None)
        if is_main_process() and osp.isfile(interim):
            os.remove(interim)

    @staticmethod
    def _hook_of(runner, kind):
        return next((hook for hook in runner.hooks if isinstance(hook, kind)), None)
