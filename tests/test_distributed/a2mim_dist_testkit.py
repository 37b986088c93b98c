"""Test-only registry entries, imported by the training subprocesses via ``custom_imports``.

* ``PathSeededMaskGenerator``: a SimMIM-style block mask with exactly ``mask_count`` masked
  cells, drawn from a generator seeded by the image path, so a sample gets the same mask in
  every process and at every position of every batch.
* ``LossRecorderHook``: each rank appends its per-iteration losses to
  ``work_dir/losses_rank{R}.jsonl`` (mmengine only logs rank 0's).
* ``PauseAfterIterHook``: with ``A2MIM_TEST_PAUSE_AFTER_ITER=N`` set, the process writes
  ``work_dir/paused_at_{N}`` after iteration ``N`` and sleeps until it is killed (at most
  ``A2MIM_TEST_PAUSE_SECONDS``).
* ``WaitForSignalHook``: with ``A2MIM_TEST_SIGNAL_AT_ITER=N`` set, each rank listed in
  ``A2MIM_TEST_SIGNAL_RANKS`` (default: all) writes ``work_dir/paused_at_{N}_rank{R}`` after
  iteration ``N`` and waits until its ``PreemptionHook`` has received a signal, which then
  stops the run after that same iteration. ``A2MIM_TEST_SELF_SIGNAL=SIGUSR1`` makes the
  process send the signal to itself instead of waiting for the test to send it;
  ``A2MIM_TEST_SIGNAL_DURING_SAVE=SIGUSR1,SIGTERM`` sends these signals to itself in the
  middle of the checkpoint saves that follow the first signal (``before_save_checkpoint``).
* ``A2MIM_TEST_KILL_WRITING=<substring>``: the process SIGKILLs itself half-way through
  writing the first file whose path contains the substring (mmengine's ``LocalBackend.put``).
"""
import json
import os
import os.path as osp
import signal
import time
import zlib

import numpy as np
from mmcv.transforms import BaseTransform
from mmengine.dist import get_dist_info
from mmengine.fileio import LocalBackend
from mmengine.hooks import Hook
from mmpretrain.registry import HOOKS, TRANSFORMS


@TRANSFORMS.register_module()
class PathSeededMaskGenerator(BaseTransform):
    """Like ``SimMIMMaskGenerator``, but the mask depends on the image path only."""

    def __init__(self, input_size=64, mask_patch_size=32, model_patch_size=16, mask_ratio=0.6):
        self.rand_size = input_size // mask_patch_size
        self.scale = mask_patch_size // model_patch_size
        self.token_count = self.rand_size ** 2
        self.mask_count = int(np.ceil(self.token_count * mask_ratio))

    def transform(self, results):
        rng = np.random.default_rng(zlib.crc32(results['img_path'].encode()))
        mask = np.zeros(self.token_count, dtype=int)
        mask[rng.permutation(self.token_count)[:self.mask_count]] = 1
        mask = mask.reshape(self.rand_size, self.rand_size)
        results['mask'] = mask.repeat(self.scale, axis=0).repeat(self.scale, axis=1)
        return results


@HOOKS.register_module()
class LossRecorderHook(Hook):
    priority = 'LOWEST'

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
        rank, world_size = get_dist_info()
        record = dict(step=runner.iter + 1, world_size=world_size,
                      batch=len(data_batch['inputs']),
                      **{k: float(v) for k, v in outputs.items()})
        with open(osp.join(runner.work_dir, f'losses_rank{rank}.jsonl'), 'a') as f:
            f.write(json.dumps(record) + '\n')


@HOOKS.register_module()
class PauseAfterIterHook(Hook):
    """Runs after every other hook of the iteration (the checkpoint hook included), so when
    ``paused_at_N`` appears, what iteration N saved is complete. Sleeps at most
    ``A2MIM_TEST_PAUSE_SECONDS`` (default 1800), then exits with an error instead of going on
    to write the next checkpoint unobserved."""

    priority = 'LOWEST'

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
        pause_at = int(os.environ.get('A2MIM_TEST_PAUSE_AFTER_ITER', '0'))
        if pause_at and runner.iter + 1 == pause_at:
            open(osp.join(runner.work_dir, f'paused_at_{pause_at}'), 'w').close()
            time.sleep(float(os.environ.get('A2MIM_TEST_PAUSE_SECONDS', '1800')))
            raise RuntimeError(f'PauseAfterIterHook: paused after iteration {pause_at} '
                               'and nobody killed the process')


_kill_writing = os.environ.get('A2MIM_TEST_KILL_WRITING')
if _kill_writing:
    _original_put = LocalBackend.put

    def _put_then_die(self, obj, filepath):
        if _kill_writing in str(filepath):
            with open(filepath, 'wb') as f:
                f.write(obj[:len(obj) // 2])
                f.flush()
                os.fsync(f.fileno())
            os.kill(os.getpid(), signal.SIGKILL)
        return _original_put(self, obj, filepath)

    LocalBackend.put = _put_then_die


@HOOKS.register_module()
class WaitForSignalHook(Hook):
    """See the module docstring. Priority 95: after the checkpoint hook of the iteration, before
    the ``PreemptionHook`` (lowest), which then sees the signal at iteration ``N``."""

    priority = 95

    @staticmethod
    def _preemption_hook(runner):
        from a2mim_plugin.engine.hooks import PreemptionHook
        return next(h for h in runner.hooks if isinstance(h, PreemptionHook))

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
        at = int(os.environ.get('A2MIM_TEST_SIGNAL_AT_ITER', '0'))
        rank, world_size = get_dist_info()
        ranks = os.environ.get('A2MIM_TEST_SIGNAL_RANKS')
        waiting = range(world_size) if not ranks else [int(r) for r in ranks.split(',')]
        if not at or runner.iter + 1 != at or rank not in waiting:
            return
        hook = self._preemption_hook(runner)
        own = os.environ.get('A2MIM_TEST_SELF_SIGNAL')
        if own:
            os.kill(os.getpid(), getattr(signal, own))
        else:
            open(osp.join(runner.work_dir, f'paused_at_{at}_rank{rank}'), 'w').close()
        deadline = time.monotonic() + float(os.environ.get('A2MIM_TEST_PAUSE_SECONDS', '600'))
        while not hook.received:  # the handler runs in this (main) thread between sleeps
            if time.monotonic() > deadline:
                raise RuntimeError(f'WaitForSignalHook: no signal after iteration {at}')
            time.sleep(0.02)

    def before_save_checkpoint(self, runner, checkpoint):
        name = os.environ.get('A2MIM_TEST_SIGNAL_DURING_SAVE')
        if name and self._preemption_hook(runner).received:  # the save after the first signal
            for one in name.split(','):
                os.kill(os.getpid(), getattr(signal, one))
            checkpoint.setdefault('meta', {})['signalled_during_save'] = name
