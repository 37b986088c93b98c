"""A CheckpointHook whose files are either complete or absent, whenever the job dies.

mmengine 0.10.7's ``CheckpointHook`` (``_save_checkpoint_with_step``) does, in this order:

1. with ``max_keep_ckpts``, delete the oldest kept checkpoint;
2. ``runner.save_checkpoint`` -> ``torch.save`` into memory -> ``LocalBackend.put``, which
   opens the final ``iter_N.pth`` with ``'wb'`` (truncating it) and writes the bytes;
3. open ``work_dir/last_checkpoint`` with ``'w'`` (truncating it) and write the path.

A job killed (SIGKILL, node failure, time limit) during 2 leaves a truncated ``iter_N.pth``
under the final name; during 3 an empty ``last_checkpoint``, which ``--resume`` reads as
"no checkpoint" and starts from scratch. With ``max_keep_ckpts=1`` a kill during 2 is
worse: step 1 has already deleted the only complete checkpoint that ``last_checkpoint``
names, so ``--resume`` fails. Nothing is fsync'ed either, so after a machine crash the
pointer can name a file whose data never reached the disk.
"""
import glob
import os
import os.path as osp
from typing import Optional

from mmengine.dist import is_main_process
from mmengine.fileio import LocalBackend
from mmengine.hooks import CheckpointHook
from mmpretrain.registry import HOOKS

from ...utils.atomic_io import PARTIAL_SUFFIX, atomic_write_bytes, fsync_dir, fsync_file


@HOOKS.register_module()
class AtomicCheckpointHook(CheckpointHook):
    """``CheckpointHook`` that never exposes a partial checkpoint or a partial pointer.

    Same arguments and behaviour as mmengine's ``CheckpointHook`` (it is a subclass; use it
    with ``default_hooks.checkpoint.type='AtomicCheckpointHook'``), except that on a local
    ``out_dir``:

    * the checkpoint is written by ``runner.save_checkpoint`` to the hidden
      ``.<name>.partial`` in the same directory, fsync'ed, and renamed to ``<name>`` with
      ``os.replace``;
    * ``last_checkpoint`` is then replaced the same way (:func:`atomic_write_bytes`);
    * only then are checkpoints beyond ``max_keep_ckpts`` deleted, so the checkpoint that
      ``last_checkpoint`` names always exists and is complete;
    * ``.partial`` files left by a killed job are removed in ``before_train``.

    Other storage backends (``backend_args`` for object stores) keep the stock behaviour,
    as do ``save_best`` checkpoints.
    """

    def before_train(self, runner) -> None:
        super().before_train(runner)
        if self._atomic() and is_main_process():
            for path in glob.glob(osp.join(glob.escape(self.out_dir), f'.*{PARTIAL_SUFFIX}')):
                runner.logger.warning(f'Removing {path}, left by a checkpoint write that '
                                      'did not finish.')
                os.remove(path)

    def _atomic(self) -> bool:
        return isinstance(self.file_backend, LocalBackend)

    def save_atomically(self, runner, name: str, by_epoch: bool,
                        meta: Optional[dict] = None) -> None:
        """Write ``out_dir/name`` (rank 0) and point ``last_checkpoint`` at it, atomically.

        Also used by :class:`PreemptionHook` for checkpoints off the periodic schedule; those
        stay out of ``max_keep_ckpts``. Every rank must call it (hooks may gather states).
        """
        final = osp.join(self.out_dir, name)
        partial = f'.{name}{PARTIAL_SUFFIX}'
        self.last_ckpt = final
        runner.message_hub.update_info('last_ckpt', final)

        runner.save_checkpoint(  # only rank 0 writes (master_only)
            self.out_dir, partial, self.file_client_args, save_optimizer=self.save_optimizer,
            save_param_scheduler=self.save_param_scheduler, meta=meta, by_epoch=by_epoch,
            backend_args=self.backend_args, **self.args)
        if not is_main_process():
            return
        fsync_file(osp.join(self.out_dir, partial))
        os.replace(osp.join(self.out_dir, partial), final)
        fsync_dir(self.out_dir)
        atomic_write_bytes(final.encode(), osp.join(runner.work_dir, 'last_checkpoint'))

    def _save_checkpoint_with_step(self, runner, step, meta):
        if not self._atomic():
            return super()._save_checkpoint_with_step(runner, step, meta)

        expired: Optional[int] = None
        if self.max_keep_ckpts > 0 and not (self.keep_ckpt_ids
                                            and self.keep_ckpt_ids[-1] == step):
            if len(self.keep_ckpt_ids) == self.max_keep_ckpts:
                expired = self.keep_ckpt_ids.popleft()
            self.keep_ckpt_ids.append(step)
            runner.message_hub.update_info('keep_ckpt_ids', list(self.keep_ckpt_ids))

        self.save_atomically(runner, self.filename_tmpl.format(step), self.by_epoch, meta)
        if not is_main_process():
            return

        if expired is not None and expired != step:
            old = osp.join(self.out_dir, self.filename_tmpl.format(expired))
            if osp.isfile(old):
                os.remove(old)
