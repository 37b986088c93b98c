"""Run the same command again and it continues: resume from ``work_dir/last_checkpoint``.

mmengine 0.10.7's ``Runner.train`` calls the ``before_run`` hooks before ``load_or_resume``,
which resumes from ``find_latest_checkpoint(work_dir)`` when the runner's resume flag is set
and no ``load_from`` is given (what ``tools/train.py --resume`` sets). :class:`AutoResumeHook`
sets that flag in ``before_run`` when the work directory already holds a ``last_checkpoint``,
so a requeued Slurm job, or a user repeating the command, needs no ``--resume``.
"""
import os.path as osp

from mmengine.hooks import Hook
from mmengine.runner.checkpoint import find_latest_checkpoint
from mmpretrain.registry import HOOKS


@HOOKS.register_module()
class AutoResumeHook(Hook):
    """Resume from ``work_dir/last_checkpoint`` when the run was started without
    ``resume``/``load_from`` and that pointer exists; otherwise do nothing.

    An explicit ``--resume CKPT``, ``--resume`` or ``load_from`` (a fine-tuning start) always
    wins. The log says whether it resumed and from which checkpoint (mmengine then logs the
    epoch and iteration it resumed at). Remove the hook from ``custom_hooks`` to start from
    scratch in a work directory that holds checkpoints.
    """

    priority = 'VERY_HIGH'

    def before_run(self, runner) -> None:
        if runner._resume or runner._load_from is not None:
            return
        pointer = osp.join(runner.work_dir, 'last_checkpoint')
        latest = find_latest_checkpoint(runner.work_dir) if osp.exists(pointer) else None
        if not latest:
            runner.logger.info('AutoResumeHook: no last_checkpoint in '
                               f'{runner.work_dir}; starting from scratch.')
            return
        if not osp.isfile(latest):
            raise FileNotFoundError(
                f'AutoResumeHook: {pointer} names {latest}, which does not exist; delete '
                'last_checkpoint to start from scratch, or pass --resume <checkpoint>.')
        runner.logger.info(f'AutoResumeHook: resuming from {latest} (named by {pointer}).')
        runner._resume = True
