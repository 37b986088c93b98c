"""Config writer and subprocess helpers shared by the distributed / resume tests."""
import os
import sys
from pathlib import Path
from typing import Dict, List, Sequence

import torch

HERE = Path(__file__).resolve().parent
REPO_ROOT = HERE.parents[1]
BIN = Path(sys.executable).parent  # the venv's bin: mim, torchrun

# A tiny A2MIM ViT (LayerNorm only, no batch statistics) on 64 px crops of real photos.
TINY_VIT_CFG = '''
_base_ = 'mmpretrain::_base_/default_runtime.py'
custom_imports = dict(imports=['a2mim_plugin', 'a2mim_dist_testkit'], allow_failed_imports=False)
model = dict(
    type='A2MIM',
    data_preprocessor=dict(type='SelfSupDataPreprocessor', mean=[123.675, 116.28, 103.53],
                           std=[58.395, 57.12, 57.375], to_rgb=True),
    backbone=dict(type='A2MIMViT', arch=dict(embed_dims=64, num_layers=2, num_heads=2,
                                            feedforward_channels=128),
                  img_size=64, patch_size=16, drop_path_rate=DROP_PATH, mask_layer=0),
    neck=dict(type='A2MIMLinearDecoder', in_channels=64, encoder_stride=16, kernel_size=1),
    head=dict(type='A2MIMHead', loss=dict(type='ElementwiseL1Loss'), fft_weight=FFT_WEIGHT,
              fft_focal=True, fft_unmask_replace='mixed'))
train_dataloader = dict(
    batch_size=BATCH, num_workers=0, persistent_workers=False,
    sampler=dict(type='DefaultSampler', shuffle=SHUFFLE),
    collate_fn=dict(type='default_collate'),
    dataset=dict(type='CustomDataset', data_root=DATA_ROOT, data_prefix='train',
                 with_label=False, pipeline=PIPELINE))
optim_wrapper = dict(type='OptimWrapper', accumulative_counts=ACCUMULATE,
                     optimizer=dict(type='AdamW', lr=1e-3, weight_decay=0.05))
param_scheduler = [dict(type='CosineAnnealingLR', T_max=MAX_ITERS, eta_min=1e-5,
                        by_epoch=False, begin=0, end=MAX_ITERS)]
train_cfg = TRAIN_CFG
default_hooks = dict(logger=dict(type='LoggerHook', interval=1),
                     checkpoint=dict(type='CHECKPOINT_HOOK', interval=CKPT_INTERVAL, by_epoch=BY_EPOCH,
                                     max_keep_ckpts=MAX_KEEP))
custom_hooks = [dict(type='RNGStateHook'), dict(type='LossRecorderHook'),
                dict(type='PauseAfterIterHook')] + EXTRA_HOOKS
log_processor = dict(by_epoch=False)
randomness = dict(seed=0)
# CPU-only multi-process: gloo instead of nccl, and DDP without device_ids (mmengine's
# default wrapper passes device_ids=[LOCAL_RANK], which DDP refuses for CPU modules).
env_cfg = dict(dist_cfg=dict(backend='gloo'))
model_wrapper_cfg = dict(type='MMDistributedDataParallel', device_ids=None,
                         broadcast_buffers=False)
'''

# Crops, flips and masks all random: what a real pre-training pipeline draws.
RANDOM_PIPELINE = [
    dict(type='LoadImageFromFile'),
    dict(type='RandomResizedCrop', scale=64, crop_ratio_range=(0.6, 1.0)),
    dict(type='RandomFlip', prob=0.5),
    dict(type='SimMIMMaskGenerator', input_size=64, mask_patch_size=32, model_patch_size=16,
         mask_ratio=0.6),
    dict(type='PackInputs')]
# The same crop and mask for a sample wherever and whenever it is loaded.
DETERMINISTIC_PIPELINE = [
    dict(type='LoadImageFromFile'),
    dict(type='CenterCrop', crop_size=64),
    dict(type='PathSeededMaskGenerator', input_size=64, mask_patch_size=32,
         model_patch_size=16, mask_ratio=0.6),
    dict(type='PackInputs')]


def write_vit_config(path: Path, data_root: Path, *, batch: int = 2, max_iters: int = 4,
                     shuffle: bool = True, deterministic: bool = False, drop_path: float = 0.,
                     fft_weight: float = 0., checkpoint_hook: str = 'AtomicCheckpointHook',
                     max_keep: int = -1, max_epochs: int = 0, accumulate: int = 1,
                     extra_hooks: Sequence[dict] = ()) -> Path:
    """Write the tiny ViT config with these settings to ``path``.

    ``max_epochs > 0`` switches to an EpochBasedTrainLoop with a checkpoint every epoch
    (``max_iters`` then only sets the length of the cosine schedule); otherwise the loop is
    iteration-based with a checkpoint every 2 iterations. ``accumulate`` sets
    ``optim_wrapper.accumulative_counts``; ``extra_hooks`` go after the other custom hooks.
    """
    pipeline = DETERMINISTIC_PIPELINE if deterministic else RANDOM_PIPELINE
    text = TINY_VIT_CFG.replace('CHECKPOINT_HOOK', checkpoint_hook)
    header = (f'DATA_ROOT = {str(data_root)!r}\nBATCH = {batch}\nMAX_ITERS = {max_iters}\n'
              f'SHUFFLE = {shuffle}\nDROP_PATH = {drop_path}\nFFT_WEIGHT = {fft_weight}\n'
              f'MAX_KEEP = {max_keep}\nPIPELINE = {pipeline!r}\nACCUMULATE = {accumulate}\n'
              f'EXTRA_HOOKS = {list(extra_hooks)!r}\n')
    if max_epochs:
        header += (f"TRAIN_CFG = dict(type='EpochBasedTrainLoop', max_epochs={max_epochs})\n"
                   'CKPT_INTERVAL = 1\nBY_EPOCH = True\n')
    else:
        header += ("TRAIN_CFG = dict(type='IterBasedTrainLoop', max_iters=MAX_ITERS)\n"
                   'CKPT_INTERVAL = 2\nBY_EPOCH = False\n')
    path.write_text(header + text)
    return path


def train_env(**extra: str) -> Dict[str, str]:
    """Environment for training subprocesses: the test kit importable, weights-only loads on,
    one intra-op thread per process (2 processes share 2 cores)."""
    env = {k: v for k, v in os.environ.items() if k != 'TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD'}
    env['PYTHONPATH'] = os.pathsep.join(
        [str(HERE), str(REPO_ROOT)] + [p for p in [os.environ.get('PYTHONPATH')] if p])
    env.setdefault('OMP_NUM_THREADS', '1')
    env['PATH'] = f'{BIN}{os.pathsep}{env.get("PATH", "")}'
    env.update(extra)
    return env


def load_state(path: Path) -> Dict[str, torch.Tensor]:
    """``state_dict`` of a runner checkpoint (weights-only load, plugin allow-list)."""
    return torch.load(path, map_location='cpu')['state_dict']


def read_losses(work_dir: Path) -> Dict[int, List[dict]]:
    """``{rank: [record per iteration]}`` written by ``LossRecorderHook``."""
    import json
    out: Dict[int, List[dict]] = {}
    for path in sorted(work_dir.glob('losses_rank*.jsonl')):
        rank = int(path.stem.replace('losses_rank', ''))
        out[rank] = [json.loads(line) for line in path.read_text().splitlines() if line]
    return out


def tail(text: str, n: int = 4000) -> str:
    return text[-n:] if text else ''


def wait_for_files(paths, proc, log_path: Path, timeout: float) -> None:
    """Poll until every path in ``paths`` exists (the event a training run signals with a
    marker file); fail with the run's state and log if ``proc`` ends first or ``timeout``
    seconds pass (a failure guard, not a synchronisation)."""
    import time
    import pytest
    start = time.monotonic()
    paths = [Path(p) for p in paths]
    while not all(p.exists() for p in paths):
        waited = time.monotonic() - start
        missing = [p.name for p in paths if not p.exists()]
        if waited > timeout or (proc is not None and proc.poll() is not None):
            state = 'running' if proc is None or proc.poll() is None \
                else f'exited with {proc.returncode}'
            work_dir = paths[0].parent
            files = sorted(p.name for p in work_dir.iterdir()) if work_dir.is_dir() else []
            log = tail(Path(log_path).read_text()) if Path(log_path).exists() else ''
            pytest.fail(f'still missing {missing} after {waited:.0f} s: process {state}; '
                        f'files in {work_dir.name}: {files}\n--- log tail ---\n{log}')
        time.sleep(0.2)
