"""Helpers for tests that run MMPretrain's stock entry points in a subprocess."""
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Dict, List, Sequence

import mmpretrain

REPO_ROOT = Path(__file__).resolve().parents[1]
MMPRETRAIN_TRAIN = Path(mmpretrain.__file__).parent / '.mim' / 'tools' / 'train.py'

# A tiny A2MIM ResNet-18 run on a folder of photos; DATA_ROOT is filled in by the test.
TINY_A2MIM_RESNET_CFG = '''
_base_ = 'mmpretrain::_base_/default_runtime.py'
custom_imports = dict(imports=['a2mim_plugin'], allow_failed_imports=False)
model = dict(
    type='A2MIM',
    data_preprocessor=dict(type='SelfSupDataPreprocessor', mean=[123.675, 116.28, 103.53],
                           std=[58.395, 57.12, 57.375], to_rgb=True),
    backbone=dict(type='A2MIMResNet', depth=18, mask_layer=3, mask_init=1e-6),
    neck=dict(type='A2MIMLinearDecoder', in_channels=512, encoder_stride=32),
    head=dict(type='A2MIMHead', loss=dict(type='FocalL1Loss'), fft_weight=0.5, fft_focal=True,
              fft_unmask_replace='mixed', fft_unmask_weight=1e-3))
train_dataloader = dict(
    batch_size=2, num_workers=0, persistent_workers=False,
    sampler=dict(type='DefaultSampler', shuffle=True),
    collate_fn=dict(type='default_collate'),
    dataset=dict(type='CustomDataset', data_root=DATA_ROOT, data_prefix='train', with_label=False,
                 pipeline=[dict(type='LoadImageFromFile'),
                           dict(type='RandomResizedCrop', scale=64, crop_ratio_range=(0.8, 1.0)),
                           dict(type='RandomFlip', prob=0.5),
                           dict(type='SimMIMMaskGenerator', input_size=64, mask_patch_size=32,
                                model_patch_size=16, mask_ratio=0.6),
                           dict(type='PackInputs')]))
optim_wrapper = dict(type='OptimWrapper', optimizer=dict(type='AdamW', lr=1e-3, weight_decay=0.05))
param_scheduler = [dict(type='CosineAnnealingLR', T_max=4, eta_min=1e-5, by_epoch=False,
                        begin=0, end=4)]
train_cfg = dict(type='IterBasedTrainLoop', max_iters=4)
default_hooks = dict(logger=dict(type='LoggerHook', interval=1),
                     checkpoint=dict(type='CheckpointHook', interval=2, by_epoch=False))
log_processor = dict(by_epoch=False)
randomness = dict(seed=0)
'''


def write_tiny_config(path: Path, data_root: Path) -> Path:
    """Write :data:`TINY_A2MIM_RESNET_CFG` for ``data_root`` to ``path``."""
    path.write_text(f'DATA_ROOT = {str(data_root)!r}\n' + TINY_A2MIM_RESNET_CFG)
    return path


def run_stock_train(config: Path, work_dir: Path, *extra: str,
                    timeout: int = 300) -> subprocess.CompletedProcess:
    """Run MMPretrain's own ``tools/train.py`` on ``config``; fail the test with its output."""
    env = {k: v for k, v in os.environ.items() if k != 'TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD'}
    cmd: List[str] = [sys.executable, str(MMPRETRAIN_TRAIN), str(config), '--work-dir',
                      str(work_dir), *extra]
    proc = subprocess.run(cmd, cwd=REPO_ROOT, env=env, capture_output=True, text=True,
                          timeout=timeout)
    assert proc.returncode == 0, f'{" ".join(cmd)} failed:\n{proc.stdout[-3000:]}\n' \
                                 f'{proc.stderr[-5000:]}'
    return proc


def read_scalars(work_dir: Path) -> List[Dict]:
    """All records of the runs' ``vis_data/scalars.json`` files under ``work_dir``."""
    records: List[Dict] = []
    for path in sorted(work_dir.glob('*/vis_data/scalars.json')):
        records += [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return records


def by_step(records: Sequence[Dict], key: str) -> Dict[int, float]:
    """``{step: value}`` of ``key`` over training records."""
    return {r['step']: r[key] for r in records if key in r}
