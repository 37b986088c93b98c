"""Each backbone family trains 2 iterations and validates (mIoU) through MMSegmentation's Runner.

The tiny configs inherit the real ``projects/seg`` configs (loading settings, schedule,
optimizer constructor, heads) and start from this session's A2MIM pre-training checkpoints.
"""
import math
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from mmengine.config import Config
from mmengine.hooks import Hook
from mmengine.runner import Runner

from helpers import read_scalars
from seg_helpers import (REPO_ROOT, assert_backbone_matches_checkpoint, checkpoint_backbone,
                         write_tiny_seg_config)

# ViT and ConvNeXt start from full runner checkpoints, ResNet from an exported backbone.
CASES = {'vit': 'full', 'resnet': 'exported', 'convnext': 'full'}


class _Probe(Hook):
    """Keeps the backbone weights at the start of training, the losses and the val metrics."""

    def __init__(self):
        self.initial, self.losses, self.metrics = None, [], None

    def before_train(self, runner):
        self.initial = {k: v.detach().clone()
                        for k, v in runner.model.backbone.state_dict().items()}

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
        self.losses.append(float(outputs['loss']))

    def after_val_epoch(self, runner, metrics=None):
        self.metrics = dict(metrics)


@pytest.mark.parametrize('family', sorted(CASES))
def test_train_and_validate_from_a2mim_checkpoint(family, tmp_path, seg_dataset,
                                                  a2mim_checkpoints):
    checkpoint = a2mim_checkpoints[family][CASES[family]]
    config = write_tiny_seg_config(family, tmp_path / f'tiny_seg_run_{family}.py', seg_dataset,
                                   checkpoint)
    cfg = Config.fromfile(str(config))
    cfg.work_dir = str(tmp_path / 'work')
    runner = Runner.from_cfg(cfg)
    probe = _Probe()
    runner.register_hook(probe, priority='LOWEST')
    runner.train()

    # The backbone started from the pre-trained weights (resized ones: independently checked).
    assert_backbone_matches_checkpoint(family, probe.initial, checkpoint_backbone(checkpoint))
    # ... and then trained.
    assert len(probe.losses) == 2 and all(math.isfinite(v) for v in probe.losses), probe.losses
    final = runner.model.backbone.state_dict()
    assert any(not torch.equal(final[k], v) for k, v in probe.initial.items()
               if v.is_floating_point())
    # wiring only (a 2-iteration model scores anything); test_seg_metrics.py checks the same
    # evaluator on predictions of known quality
    assert probe.metrics is not None and 0. <= probe.metrics['mIoU'] <= 100., probe.metrics
    assert (tmp_path / 'work' / 'iter_2.pth').is_file()


def test_mim_train_mmseg_launch(tmp_path, seg_dataset, a2mim_checkpoints):
    """The launch command of projects/seg/README.md: ``mim train mmseg CONFIG --cfg-options
    model.backbone.init_cfg.checkpoint=PATH`` (here on the CPU: ``--gpus 0``). The configs
    import only installed packages, so the repository root is deliberately kept off
    ``PYTHONPATH``."""
    checkpoint = a2mim_checkpoints['convnext']['exported']
    config = write_tiny_seg_config('convnext', tmp_path / 'tiny_seg_mim_convnext.py',
                                   seg_dataset, checkpoint='')
    env = {k: v for k, v in os.environ.items() if k != 'TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD'}
    kept = [p for p in env.pop('PYTHONPATH', '').split(os.pathsep)
            if p and Path(p).resolve() != REPO_ROOT]
    if kept:
        env['PYTHONPATH'] = os.pathsep.join(kept)
    work_dir = tmp_path / 'work'
    cmd = [str(Path(sys.executable).parent / 'mim'), 'train', 'mmseg', str(config), '--gpus',
           '0', '--work-dir', str(work_dir), '--cfg-options',
           f'model.backbone.init_cfg.checkpoint={checkpoint}']
    proc = subprocess.run(cmd, cwd=REPO_ROOT, env=env, capture_output=True, text=True,
                          timeout=300)
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, log[-6000:]
    assert re.search(r'Pretrained\(strict=True\): loaded all \d+ tensors', log), log[-3000:]
    assert str(checkpoint) in log
    assert (work_dir / 'iter_2.pth').is_file()
    records = read_scalars(work_dir)
    losses = [r['loss'] for r in records if 'loss' in r]
    assert len(losses) == 2 and all(math.isfinite(v) for v in losses), losses
    miou = [r['mIoU'] for r in records if 'mIoU' in r]
    assert len(miou) == 1 and 0. <= miou[0] <= 100., records
