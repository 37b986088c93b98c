"""The configs of every published row: they parse, build, carry the official numbers and run.

* every file under ``configs/`` (except ``configs/demo``) parses with ``Config.fromfile``;
* every leaf config builds its model (ViTs on the meta device), the fine-tuning models with the
  published parameter counts;
* the pre-training numbers of each row (LR, batch, loss, mask layer / patch, crop, epochs,
  precision, optimizer groups, schedule) are those of the official configs;
* a tiny version of every pre-training config (tiny arch, 64 px, 4 photos, 2 iterations on the
  CPU) trains through MMPretrain's own ``tools/train.py``; one also through ``mim train``.

The fine-tuning numbers are checked here; the export-then-fine-tune path is in
``test_finetune_transfer.py``.
"""
import copy
import functools
import math
import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional

import pytest
import torch
from mmengine.config import Config
from mmengine.optim import OptimWrapper, build_optim_wrapper
from mmengine.registry import PARAM_SCHEDULERS
from mmpretrain.registry import MODELS, TRANSFORMS
from mmpretrain.structures import DataSample

from helpers import MMPRETRAIN_TRAIN, REPO_ROOT, read_scalars, run_stock_train

CONFIGS = REPO_ROOT / 'configs'
PRETRAIN_DIRS = (CONFIGS / 'a2mim', CONFIGS / 'simmim_baselines')
FINETUNE_DIR = CONFIGS / 'a2mim' / 'benchmarks'
MMPRETRAIN_CONFIGS = MMPRETRAIN_TRAIN.parents[1] / 'configs'
PLUGIN_IMPORTS = dict(imports=['a2mim_plugin'], allow_failed_imports=False)


def _files(directory: Path) -> List[Path]:
    return sorted(directory.glob('*.py'))


# Official configurations without a published ImageNet row (checked in their own section below).
UNPUBLISHED = {
    'a2mim_swin-base-w6_8xb128-accu2-coslr-100e_in1k-192px',
    'a2mim_swin-tiny-w6_8xb128-accu2-coslr-100e_in1k-192px',
    'a2mim-simmim_swin-base-w6_8xb128-accu2-coslr-100e_in1k-192px',
    'a2mim-simmim_swin-tiny-w6_8xb128-accu2-coslr-100e_in1k-192px',
    'a2mim_convnext-tiny_8xb256-amp-coslr-300e_in1k',
    'swin-base-w6_a2mim-100e-pre_8xb256-coslr-100e_in1k-192px',
    'convnext-tiny_a2mim-300e-pre_8xb256-accu2-amp-coslr-400e_in1k',
}
PRETRAIN_CONFIGS = [p for d in PRETRAIN_DIRS for p in _files(d)]
FINETUNE_CONFIGS = [p for p in _files(FINETUNE_DIR) if '-linear-' not in p.stem]
LINEAR_CONFIGS = [p for p in _files(FINETUNE_DIR) if '-linear-' in p.stem]  # test_evaluation/
LEAF_CONFIGS = PRETRAIN_CONFIGS + FINETUNE_CONFIGS + LINEAR_CONFIGS
PUBLISHED_PRETRAIN = [p for p in PRETRAIN_CONFIGS if p.stem not in UNPUBLISHED]
PUBLISHED_FINETUNE = [p for p in FINETUNE_CONFIGS if p.stem not in UNPUBLISHED]
ALL_CONFIGS = sorted(p for p in CONFIGS.rglob('*.py') if 'demo' not in p.relative_to(CONFIGS).parts)


def _id(path: Path) -> str:
    return path.stem


@functools.lru_cache(maxsize=None)
def _parse(path: Path) -> Config:
    return Config.fromfile(str(path))


def _load(path: Path) -> Config:
    """A private copy of the parsed config (parsing `mmpretrain::` bases takes ~0.3 s)."""
    return copy.deepcopy(_parse(path))


# --------------------------------------------------------------------------------------------
# The published rows (spec section 5 and 6)
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class PretrainRow:
    algo: str  # 'a2mim' or 'simmim'
    backbone: str
    arch: object  # ViT / ConvNeXt arch name or ResNet depth
    gpus: int
    batch: int
    accum: int
    lr: float
    epochs: int
    amp: bool
    mask_layer: int
    patch: int  # model_patch_size of SimMIMMaskGenerator
    crop_min: float  # RandomResizedCrop scale lower bound
    loss: str
    fft_weight: float
    fft_focal: bool = False
    fft_unmask_weight: Optional[float] = None


def _vit(algo, arch, gpus, batch, accum, amp):
    a2mim = algo == 'a2mim'
    return PretrainRow(
        algo, 'A2MIMViT', arch, gpus=gpus, batch=batch, accum=accum, lr=4e-4, epochs=800,
        amp=amp, mask_layer=0, patch=16, crop_min=0.67, loss='ElementwiseL1Loss',
        fft_weight=0.1 if a2mim else 0., fft_focal=a2mim,
        fft_unmask_weight=0. if a2mim else None)


def _resnet(algo, depth, epochs=300, fft_weight=0., fft_focal=False):
    if algo == 'a2mim':  # mask layer 3 (stride 16), focal L1, the row's own Fourier setting
        return PretrainRow(
            algo, 'A2MIMResNet', depth, gpus=8, batch=256, accum=1, lr=1.2e-3, epochs=epochs,
            amp=False, mask_layer=3, patch=16, crop_min=0.8, loss='FocalL1Loss',
            fft_weight=fft_weight, fft_focal=fft_focal,
            fft_unmask_weight=1e-3 if fft_weight else None)
    return PretrainRow(  # SimMIM: mask layer 0 (stride 4), L1, fp16, lr 2e-4 x 4, rrc 0.67
        algo, 'A2MIMResNet', depth, gpus=8, batch=256, accum=1, lr=8e-4, epochs=epochs,
        amp=True, mask_layer=0, patch=4, crop_min=0.67, loss='ElementwiseL1Loss', fft_weight=0.)


def _convnext(algo, arch):
    a2mim = algo == 'a2mim'
    return PretrainRow(
        algo, 'A2MIMConvNeXt', arch, gpus=8, batch=256, accum=1, lr=1.2e-3 if a2mim else 8e-4,
        epochs=300, amp=True, mask_layer=3 if a2mim else 0, patch=32 if a2mim else 4,
        crop_min=0.8 if a2mim else 0.67, loss='FocalL1Loss' if a2mim else 'ElementwiseL1Loss',
        fft_weight=0.)


PRETRAIN_ROWS: Dict[str, PretrainRow] = {
    'a2mim_vit-small-p16_8xb256-step-800e_in1k': _vit('a2mim', 'small', 8, 256, 1, False),
    'a2mim_vit-base-p16_8xb128-accu2-step-800e_in1k': _vit('a2mim', 'base', 8, 128, 2, False),
    'a2mim_vit-large-p16_8xb128-accu2-step-800e_in1k': _vit('a2mim', 'large', 8, 128, 2, False),
    'a2mim_resnet50_8xb256-coslr-300e_in1k': _resnet('a2mim', 50, 300, 0.5, True),
    'a2mim_resnet50_8xb256-coslr-100e_in1k': _resnet('a2mim', 50, 100, 0.5, True),
    'a2mim_resnet101_8xb256-coslr-300e_in1k': _resnet('a2mim', 101, 300, 0.1, False),
    'a2mim_resnet152_8xb256-coslr-300e_in1k': _resnet('a2mim', 152),
    'a2mim_resnet200_8xb256-coslr-300e_in1k': _resnet('a2mim', 200),
    'a2mim_convnext-small_8xb256-amp-coslr-300e_in1k': _convnext('a2mim', 'small'),
    'a2mim_convnext-base_8xb256-amp-coslr-300e_in1k': _convnext('a2mim', 'base'),
    'a2mim-simmim_vit-small-p16_8xb256-amp-step-800e_in1k': _vit('simmim', 'small', 8, 256, 1,
                                                                  True),
    'a2mim-simmim_vit-base-p16_8xb128-accu2-step-800e_in1k': _vit('simmim', 'base', 8, 128, 2,
                                                                   False),
    'a2mim-simmim_vit-large-p16_8xb128-accu2-amp-step-800e_in1k': _vit('simmim', 'large', 8,
                                                                        128, 2, True),
    'a2mim-simmim_resnet50_8xb256-amp-coslr-300e_in1k': _resnet('simmim', 50),
    'a2mim-simmim_resnet101_8xb256-amp-coslr-300e_in1k': _resnet('simmim', 101),
    'a2mim-simmim_resnet152_8xb256-amp-coslr-300e_in1k': _resnet('simmim', 152),
    'a2mim-simmim_resnet200_8xb256-amp-coslr-300e_in1k': _resnet('simmim', 200),
    'a2mim-simmim_convnext-small_8xb256-amp-coslr-300e_in1k': _convnext('simmim', 'small'),
    'a2mim-simmim_convnext-base_8xb256-amp-coslr-300e_in1k': _convnext('simmim', 'base'),
}


@dataclass(frozen=True)
class FinetuneRow:
    protocol: str  # 'beit' | 'rsb-a2' | 'rsb-a3' | 'spark'
    arch: object
    pretrain: str  # stem of the pre-training config whose checkpoint it loads
    gpus: int
    batch: int
    accum: int
    epochs: int
    ema: bool
    drop_path: float
    top1: str  # published top-1 (%) or '' where none is published


def _ft_vit(arch, algo, epochs, top1):
    gpus, batch, accum = {'small': (8, 128, 1), 'base': (4, 128, 2), 'large': (8, 64, 2)}[arch]
    pre = {('small', 'a2mim'): 'a2mim_vit-small-p16_8xb256-step-800e_in1k',
           ('base', 'a2mim'): 'a2mim_vit-base-p16_8xb128-accu2-step-800e_in1k',
           ('large', 'a2mim'): 'a2mim_vit-large-p16_8xb128-accu2-step-800e_in1k',
           ('small', 'simmim'): 'a2mim-simmim_vit-small-p16_8xb256-amp-step-800e_in1k',
           ('base', 'simmim'): 'a2mim-simmim_vit-base-p16_8xb128-accu2-step-800e_in1k',
           ('large', 'simmim'): 'a2mim-simmim_vit-large-p16_8xb128-accu2-amp-step-800e_in1k'
           }[(arch, algo)]
    return FinetuneRow('beit', arch, pre, gpus, batch, accum, epochs, arch != 'small', 0.1, top1)


def _ft_resnet(depth, algo, protocol, top1, pre_epochs=300):
    pre = (f'a2mim_resnet{depth}_8xb256-coslr-{pre_epochs}e_in1k' if algo == 'a2mim' else
           f'a2mim-simmim_resnet{depth}_8xb256-amp-coslr-300e_in1k')
    if protocol == 'rsb-a2':
        drop_path = {50: 0.05, 101: 0.1, 152: 0.15, 200: 0.2}[depth]
        return FinetuneRow(protocol, depth, pre, 8, 256, 1, 300, depth == 50, drop_path, top1)
    return FinetuneRow(protocol, depth, pre, 4, 512, 1, 100, False, 0., top1)


def _ft_convnext(arch, algo, top1):
    pre = (f'a2mim_convnext-{arch}_8xb256-amp-coslr-300e_in1k' if algo == 'a2mim' else
           f'a2mim-simmim_convnext-{arch}_8xb256-amp-coslr-300e_in1k')
    return FinetuneRow('spark', arch, pre, 8, 256, 2, 300, True,
                       {'small': 0.4, 'base': 0.5}[arch], top1)


# Published top-1 (%), copied from the A2MIM results README (seeds); '' = no published number.
FINETUNE_ROWS: Dict[str, FinetuneRow] = {
    'vit-small-p16_a2mim-800e-pre_8xb128-amp-coslr-200e_in1k': _ft_vit('small', 'a2mim', 200,
                                                                       '82.1'),
    'vit-small-p16_a2mim-simmim-800e-pre_8xb128-amp-coslr-100e_in1k': _ft_vit(
        'small', 'simmim', 100, '81.7'),
    'vit-base-p16_a2mim-800e-pre_4xb128-accu2-amp-coslr-100e_in1k': _ft_vit(
        'base', 'a2mim', 100, '84.3'),
    'vit-base-p16_a2mim-simmim-800e-pre_4xb128-accu2-amp-coslr-100e_in1k': _ft_vit(
        'base', 'simmim', 100, '83.8'),
    'vit-large-p16_a2mim-800e-pre_8xb64-accu2-amp-coslr-150e_in1k': _ft_vit(
        'large', 'a2mim', 150, '86.1'),
    'vit-large-p16_a2mim-simmim-800e-pre_8xb64-accu2-amp-coslr-100e_in1k': _ft_vit(
        'large', 'simmim', 100, '85.6'),
    **{f'resnet{d}_a2mim-300e-pre_8xb256-amp-rsb-a2-300e_in1k': _ft_resnet(d, 'a2mim', 'rsb-a2', t)
       for d, t in ((50, '80.4'), (101, '81.9'), (152, '82.5'), (200, '83.0'))},
    **{f'resnet{d}_a2mim-simmim-300e-pre_8xb256-amp-rsb-a2-300e_in1k':
       _ft_resnet(d, 'simmim', 'rsb-a2', t)
       for d, t in ((50, '79.9'), (101, '81.3'), (152, '81.9'), (200, '82.2'))},
    **{f'resnet{d}_a2mim-300e-pre_4xb512-amp-rsb-a3-100e_in1k': _ft_resnet(d, 'a2mim', 'rsb-a3', t)
       for d, t in ((50, '78.9'), (101, ''), (152, ''), (200, ''))},
    'resnet50_a2mim-100e-pre_4xb512-amp-rsb-a3-100e_in1k': _ft_resnet(50, 'a2mim', 'rsb-a3',
                                                                      '78.8', pre_epochs=100),
    'convnext-small_a2mim-300e-pre_8xb256-accu2-amp-coslr-300e_in1k': _ft_convnext(
        'small', 'a2mim', '83.7'),
    'convnext-small_a2mim-simmim-300e-pre_8xb256-accu2-amp-coslr-300e_in1k': _ft_convnext(
        'small', 'simmim', '83.2'),
    'convnext-base_a2mim-300e-pre_8xb256-accu2-amp-coslr-300e_in1k': _ft_convnext(
        'base', 'a2mim', '84.1'),
    'convnext-base_a2mim-simmim-300e-pre_8xb256-accu2-amp-coslr-300e_in1k': _ft_convnext(
        'base', 'simmim', '83.6'),
}

# Parameter counts (M) of the headline table; the fine-tuning classifiers must match them.
PUBLISHED_PARAMS_M = {
    ('beit', 'small'): 48.8, ('beit', 'base'): 86.7, ('beit', 'large'): 304.6,
    ('resnet', 50): 25.6, ('resnet', 101): 44.5, ('resnet', 152): 60.2, ('resnet', 200): 64.7,
    ('spark', 'small'): 50.2, ('spark', 'base'): 88.6,
}


def _stride_at_mask_layer(backbone_type: str, mask_layer: int, patch_size: int = 16) -> int:
    """The feature stride where each backbone injects its mask token."""
    if backbone_type in ('A2MIMViT', 'A2MIMPlainViT'):
        return patch_size
    if backbone_type == 'A2MIMResNet':  # before res_layers[k]: 4, 4, 8, 16
        return (4, 4, 8, 16)[mask_layer]
    if backbone_type == 'A2MIMConvNeXt':  # after downsample_layers[k]: 4, 8, 16, 32
        return 4 * 2**mask_layer
    raise KeyError(backbone_type)


# --------------------------------------------------------------------------------------------
# Inventory, names, parsing
# --------------------------------------------------------------------------------------------
def test_every_config_is_covered_by_a_published_row():
    assert {p.stem for p in PUBLISHED_PRETRAIN} == set(PRETRAIN_ROWS)
    assert {p.stem for p in PUBLISHED_FINETUNE} == set(FINETUNE_ROWS)
    assert {p.stem for p in LEAF_CONFIGS} - set(PRETRAIN_ROWS) - set(FINETUNE_ROWS) - \
        {p.stem for p in LINEAR_CONFIGS} == UNPUBLISHED
    # Every pre-training row has at least one fine-tuning config loading its checkpoint.
    assert {row.pretrain for row in FINETUNE_ROWS.values()} == set(PRETRAIN_ROWS)


def test_config_names_are_unique_across_mmpretrain():
    """`mim train mmpretrain NAME` can never resolve one of ours to a packaged config."""
    packaged = {p.name for p in MMPRETRAIN_CONFIGS.rglob('*.py')}
    assert packaged, f'no packaged MMPretrain configs under {MMPRETRAIN_CONFIGS}'
    ours = [p.name for p in LEAF_CONFIGS]
    assert len(ours) == len(set(ours))
    assert not set(ours) & packaged


@pytest.mark.parametrize('path', ALL_CONFIGS, ids=lambda p: str(p.relative_to(CONFIGS)))
def test_config_parses(path):
    cfg = _load(path)
    if path in LEAF_CONFIGS:
        assert cfg.custom_imports == PLUGIN_IMPORTS
        assert cfg.default_scope == 'mmpretrain'
        assert 'model' in cfg and 'train_dataloader' in cfg and 'optim_wrapper' in cfg
        assert cfg.default_hooks.checkpoint.type == 'AtomicCheckpointHook'


@pytest.mark.parametrize('path', LEAF_CONFIGS, ids=_id)
def test_no_scope_in_collate_fn(path):
    """mmengine would call default_collate(_scope_=...) if a `mmpretrain::` base injected it."""
    collate_fn = _load(path).train_dataloader.get('collate_fn')
    assert collate_fn is None or '_scope_' not in collate_fn


# --------------------------------------------------------------------------------------------
# Model build
# --------------------------------------------------------------------------------------------
def _build(model_cfg) -> torch.nn.Module:
    model_cfg = copy.deepcopy(model_cfg)
    # Large ViTs are built on the meta device (shapes only, seconds saved); the CNNs' drop-path
    # schedule calls .item(), so they are built on the CPU (well under a second each).
    device = 'meta' if 'ViT' in model_cfg['backbone']['type'] else 'cpu'
    with torch.device(device):
        return MODELS.build(model_cfg)


@pytest.mark.parametrize('path', PUBLISHED_PRETRAIN, ids=_id)
def test_pretrain_model_builds(path):
    cfg = _load(path)
    row = PRETRAIN_ROWS[path.stem]
    model = _build(cfg.model)
    assert type(model).__name__ == 'A2MIM'
    assert type(model.backbone).__name__ == row.backbone
    assert type(model.neck).__name__ == 'A2MIMLinearDecoder'
    assert type(model.head).__name__ == 'A2MIMHead'
    assert type(model.head.criterion).__name__ == row.loss
    has_gamma = row.algo == 'a2mim' and row.backbone != 'A2MIMViT'
    assert (getattr(model.backbone, 'mask_gamma', None) is not None) == has_gamma
    assert isinstance(model.backbone.mask_token, torch.nn.Parameter)


@pytest.mark.parametrize('path', PUBLISHED_FINETUNE, ids=_id)
def test_finetune_model_builds_with_published_size(path):
    cfg = _load(path)
    row = FINETUNE_ROWS[path.stem]
    model = _build(cfg.model)
    assert type(model).__name__ == 'ImageClassifier'
    # Stock MMPretrain parts only; the one exception is ResNet-200, which MMPretrain lacks: the
    # plugin's A2MIMResNet without a mask token (a plain ResNet with the same names).
    plugin_modules = [m for m in model.modules()
                      if type(m).__module__.startswith('a2mim_plugin')]
    if row.arch == 200:
        assert plugin_modules == [model.backbone] and model.backbone.mask_token is None
        assert model.backbone.mask_gamma is None
    else:
        assert plugin_modules == []
    family = 'resnet' if row.protocol.startswith('rsb') else row.protocol
    n_params = sum(p.numel() for p in model.parameters()) / 1e6
    assert n_params == pytest.approx(PUBLISHED_PARAMS_M[(family, row.arch)], abs=0.06)


# --------------------------------------------------------------------------------------------
# Pre-training numbers per row
# --------------------------------------------------------------------------------------------
def _transform(pipeline, type_name) -> dict:
    matches = [t for t in pipeline if t['type'] == type_name]
    assert len(matches) == 1, f'{type_name} in {pipeline}'
    return matches[0]


@pytest.mark.parametrize('path', PUBLISHED_PRETRAIN, ids=_id)
def test_pretrain_row_numbers(path):
    cfg, row = _load(path), PRETRAIN_ROWS[path.stem]
    model, bb, head = cfg.model, cfg.model.backbone, cfg.model.head

    # File name: {algo}_{backbone}_{N}xb{B}[-accu{k}][-amp]-{step|coslr}-{E}e_in1k
    name = re.fullmatch(r'(a2mim|a2mim-simmim)_([\w.-]+?)_(\d+)xb(\d+)(?:-accu(\d+))?(-amp)?'
                        r'-(step|coslr)-(\d+)e_in1k', path.stem)
    assert name, path.stem
    assert (name[1] == 'a2mim') == (row.algo == 'a2mim')
    assert (int(name[3]), int(name[4]), int(name[5] or 1)) == (row.gpus, row.batch, row.accum)
    assert bool(name[6]) == row.amp
    assert name[7] == ('step' if row.backbone == 'A2MIMViT' else 'coslr')
    assert int(name[8]) == row.epochs

    # Algorithm and model.
    assert model.type == 'A2MIM'
    assert model.input_fill == ('mean' if row.algo == 'a2mim' else None)
    assert model.data_preprocessor == dict(
        type='SelfSupDataPreprocessor', mean=[123.675, 116.28, 103.53],
        std=[58.395, 57.12, 57.375], to_rgb=True)
    assert bb.type == row.backbone
    assert bb.get('arch', bb.get('depth')) == row.arch
    assert bb.mask_layer == row.mask_layer
    assert bb.mask_token == 'learnable'
    if row.algo == 'a2mim':
        assert bb.replace is False
        assert bb.mask_init == (0. if row.backbone == 'A2MIMViT' else 1e-6)
    else:  # SimMIM: token replaces features, except the official additive ConvNeXt token
        assert bb.replace is (row.backbone != 'A2MIMConvNeXt')
        assert bb.mask_init == 0.
    if row.backbone == 'A2MIMViT':
        assert (bb.patch_size, bb.img_size, bb.drop_path_rate) == (16, 224, 0.1)
        assert bb.use_abs_pos_emb and bb.use_rel_pos_bias and not bb.use_shared_rel_pos_bias
        assert bb.layer_scale_init_value == 0.1
        assert (bb.final_norm, bb.out_type) == (True, 'featmap')
        neck_in, stride = {'small': 768, 'base': 768, 'large': 1024}[row.arch], 16
    elif row.backbone == 'A2MIMResNet':
        assert bb.norm_cfg.type == 'SyncBN' and bb.zero_init_residual
        assert bb.drop_path_rate == 0. and tuple(bb.out_indices) == (3, )
        neck_in, stride = 2048, 32
    else:
        assert (bb.drop_path_rate, bb.layer_scale_init_value) == (0., 1e-6)
        assert bb.gap_before_final_norm is False and tuple(bb.out_indices) == (3, )
        neck_in, stride = {'small': 768, 'base': 1024}[row.arch], 32
    assert (model.neck.type, model.neck.in_channels, model.neck.encoder_stride) == (
        'A2MIMLinearDecoder', neck_in, stride)
    assert model.neck.get('kernel_size', 1) == 1

    # Loss.
    assert head.type == 'A2MIMHead'
    assert head.loss.type == row.loss
    if row.loss == 'FocalL1Loss':
        assert (head.loss.alpha, head.loss.gamma) == (0.2, 1.0)
    assert head.get('fft_weight', 0.) == row.fft_weight
    if row.fft_weight:
        assert head.fft_focal == row.fft_focal
        assert head.fft_unmask_replace == 'mixed'
        assert head.fft_unmask_weight == row.fft_unmask_weight
    assert head.get('unmask_weight', 0.) == 0.

    # Data: ImageNet train split, RRC 224 (pillow, bilinear), flip, 32-px blocks at 0.6.
    loader = cfg.train_dataloader
    assert loader.batch_size == row.batch
    assert loader.collate_fn.type == 'default_collate'
    assert (loader.dataset.type, loader.dataset.data_root, loader.dataset.split) == (
        'ImageNet', 'data/imagenet/', 'train')
    pipeline = loader.dataset.pipeline
    assert [t['type'] for t in pipeline] == [
        'LoadImageFromFile', 'RandomResizedCrop', 'RandomFlip', 'SimMIMMaskGenerator',
        'PackInputs']
    rrc = _transform(pipeline, 'RandomResizedCrop')
    assert (rrc['scale'], tuple(rrc['crop_ratio_range']), rrc['backend'],
            rrc['interpolation']) == (224, (row.crop_min, 1.0), 'pillow', 'bilinear')
    assert _transform(pipeline, 'RandomFlip')['prob'] == 0.5
    mask_gen = _transform(pipeline, 'SimMIMMaskGenerator')
    assert mask_gen == dict(type='SimMIMMaskGenerator', input_size=224, mask_patch_size=32,
                            model_patch_size=row.patch, mask_ratio=0.6)
    # The backbones reshape (not resize) the mask: its cell must be the stride at the token.
    assert row.patch == _stride_at_mask_layer(bb.type, bb.mask_layer, bb.get('patch_size', 16))

    # Optimizer: AdamW (0.9, 0.999), wd 0.05, LR written as base x 2048 / 512; batch 2048.
    ow = cfg.optim_wrapper
    assert ow.type == ('AmpOptimWrapper' if row.amp else 'OptimWrapper')
    if row.amp:
        assert ow.loss_scale == 'dynamic'
    opt = ow.optimizer
    assert (opt.type, tuple(opt.betas), opt.eps, opt.weight_decay) == (
        'AdamW', (0.9, 0.999), 1e-8, 0.05)
    assert opt.lr == pytest.approx(row.lr)
    assert ow.get('accumulative_counts', 1) == row.accum
    assert row.gpus * row.batch * row.accum == 2048
    # mmengine's auto-scale counts GPUs x per-GPU batch and ignores the accumulation.
    assert cfg.auto_scale_lr.base_batch_size * row.accum == 2048
    assert cfg.default_hooks.total_batch_check == dict(type='TotalBatchCheckHook',
                                                       total_batch=2048)
    assert ow.get('clip_grad') == (dict(max_norm=5.0) if row.backbone == 'A2MIMViT' else None)

    # Schedule: 10 warm-up epochs (per iteration), then step@700 (ViT) or cosine to 1e-5.
    assert cfg.train_cfg.type == 'EpochBasedTrainLoop'
    assert cfg.train_cfg.max_epochs == row.epochs
    warmup, main = cfg.param_scheduler
    assert (warmup.type, warmup.begin, warmup.end, warmup.by_epoch) == ('LinearLR', 0, 10, True)
    assert warmup.convert_to_iter_based and warmup.start_factor <= 2e-6
    assert main.end == row.epochs
    if row.backbone == 'A2MIMViT':
        assert (main.type, main.milestones, main.gamma, main.begin) == (
            'MultiStepLR', [700], 0.1, 0)
    else:
        assert (main.type, main.eta_min, main.begin) == ('CosineAnnealingLR', 1e-5, 10)
        assert main.convert_to_iter_based


def _lr_curve(cfg: Config, epoch_length: int = 2) -> List[float]:
    """Base LR at the start of every epoch, with the schedulers as the runner builds them."""
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))],
                                lr=cfg.optim_wrapper.optimizer.lr)
    optim_wrapper = OptimWrapper(optimizer)
    max_epochs = cfg.train_cfg.max_epochs
    schedulers = []
    for sched in cfg.param_scheduler:
        sched = copy.deepcopy(sched.to_dict())
        sched.setdefault('end', max_epochs)  # what the Runner does
        schedulers.append(PARAM_SCHEDULERS.build(sched, default_args=dict(
            optimizer=optim_wrapper, epoch_length=epoch_length)))
    lrs = []
    for _ in range(max_epochs):
        lrs.append(optim_wrapper.optimizer.param_groups[0]['lr'])
        for _ in range(epoch_length):
            for s in schedulers:
                if not s.by_epoch:
                    s.step()
        for s in schedulers:
            if s.by_epoch:
                s.step()
    return lrs


@pytest.mark.filterwarnings('ignore:Detected call of')
@pytest.mark.parametrize('stem', ['a2mim_vit-small-p16_8xb256-step-800e_in1k',
                                  'a2mim_resnet50_8xb256-coslr-300e_in1k',
                                  'a2mim_resnet50_8xb256-coslr-100e_in1k'])
def test_pretrain_lr_schedule(stem):
    cfg = _load(next(p for p in PRETRAIN_CONFIGS if p.stem == stem))
    base = cfg.optim_wrapper.optimizer.lr
    lrs = _lr_curve(cfg)
    assert lrs[0] < 1e-5 * base
    assert lrs[5] == pytest.approx(base * 0.5, rel=0.06)  # linear warm-up
    assert lrs[10] == pytest.approx(base)
    if 'vit' in stem:
        assert lrs[699] == pytest.approx(base) and lrs[700] == pytest.approx(0.1 * base)
        assert lrs[-1] == pytest.approx(0.1 * base)
    else:
        mid = 10 + (len(lrs) - 10) // 2
        assert lrs[mid] == pytest.approx((base + 1e-5) / 2, rel=0.02)
        assert 1e-5 < lrs[-1] < 1e-5 + 1e-3 * base


def _groups_by_name(model, optim_cfg) -> Dict[str, dict]:
    optim_cfg = copy.deepcopy(optim_cfg.to_dict())
    optim_cfg['type'] = 'OptimWrapper'  # AmpOptimWrapper asserts a GPU
    optim_cfg.pop('loss_scale', None)
    wrapper = build_optim_wrapper(model, optim_cfg)
    names = {id(p): n for n, p in model.named_parameters()}
    return {names[id(p)]: g for g in wrapper.optimizer.param_groups for p in g['params']}


TINY_BACKBONES = {
    'A2MIMViT': (dict(arch=dict(_delete_=True, embed_dims=64, num_layers=2, num_heads=2,
                                feedforward_channels=128), img_size=64), 64),
    'A2MIMResNet': (dict(depth=18), 512),
    'A2MIMConvNeXt': (dict(arch='atto'), 320),
    'SwinTransformer': (dict(arch=dict(_delete_=True, embed_dims=32, depths=[2, 2, 2, 2],
                                       num_heads=[1, 2, 4, 8]), img_size=64,
                             stage_cfgs=dict(block_cfgs=dict(window_size=2))), 256),
}


def _tiny_model_cfg(cfg: Config) -> Config:
    backbone, neck_in = copy.deepcopy(TINY_BACKBONES[cfg.model.backbone.type])
    tiny = copy.deepcopy(cfg)
    tiny.merge_from_dict(dict(model=dict(backbone=backbone, neck=dict(in_channels=neck_in))))
    return tiny


@pytest.mark.parametrize('stem, decayed, no_decay, lr_mult', [
    # ViT: the official re.search of 'bias' also exempts the rel-pos-bias tables; norms,
    # biases, gammas, pos/cls/mask tokens are not decayed either.
    ('a2mim_vit-small-p16_8xb256-step-800e_in1k',
     ['backbone.layers.0.attn.qkv.weight', 'neck.decoder.0.weight'],
     ['backbone.layers.0.attn.relative_position_bias_table',
      'backbone.layers.0.ln1.weight', 'backbone.ln1.bias', 'backbone.layers.0.attn.q_bias',
      'backbone.layers.0.gamma_1', 'backbone.pos_embed', 'backbone.cls_token',
      'backbone.mask_token', 'backbone.patch_embed.projection.bias'], {}),
    # ResNet 300 ep: mask_gamma not listed (decayed, full LR); shortcut BN weight decayed.
    ('a2mim_resnet50_8xb256-coslr-300e_in1k',
     ['backbone.mask_gamma', 'backbone.layer2.0.downsample.1.weight',
      'backbone.layer1.0.conv1.weight'],
     ['backbone.bn1.weight', 'backbone.layer1.0.bn2.bias', 'backbone.layer2.0.downsample.1.bias',
      'backbone.mask_token'], {'backbone.mask_token': 0.1, 'backbone.mask_gamma': 1.0}),
    # ResNet 100 ep lists mask_gamma.
    ('a2mim_resnet50_8xb256-coslr-100e_in1k', ['backbone.layer2.0.downsample.1.weight'],
     ['backbone.mask_gamma', 'backbone.mask_token'],
     {'backbone.mask_token': 0.1, 'backbone.mask_gamma': 0.1}),
    # ConvNeXt: LN weights decayed (regex quirk), layer scales not.
    ('a2mim_convnext-small_8xb256-amp-coslr-300e_in1k',
     ['backbone.stages.0.0.norm.weight', 'backbone.norm3.weight',
      'backbone.downsample_layers.0.1.weight'],
     ['backbone.stages.0.0.norm.bias', 'backbone.stages.0.0.gamma', 'backbone.mask_gamma',
      'backbone.mask_token'], {'backbone.mask_token': 0.1, 'backbone.mask_gamma': 0.1}),
    # SimMIM CNN baselines: mask_token without decay at the base LR (no x0.1).
    ('a2mim-simmim_resnet50_8xb256-amp-coslr-300e_in1k',
     ['backbone.layer2.0.downsample.1.weight', 'backbone.layer1.0.conv1.weight'],
     ['backbone.bn1.weight', 'backbone.mask_token'], {'backbone.mask_token': 1.0}),
    ('a2mim-simmim_convnext-small_8xb256-amp-coslr-300e_in1k',
     ['backbone.stages.0.0.norm.weight'],
     ['backbone.stages.0.0.gamma', 'backbone.mask_token'], {'backbone.mask_token': 1.0}),
])
def test_pretrain_optimizer_groups_reproduce_official_quirks(stem, decayed, no_decay, lr_mult):
    cfg = _tiny_model_cfg(_load(next(p for p in PRETRAIN_CONFIGS if p.stem == stem)))
    model = MODELS.build(cfg.model)
    groups = _groups_by_name(model, cfg.optim_wrapper)
    base_lr = cfg.optim_wrapper.optimizer.lr
    for name in decayed:
        assert groups[name]['weight_decay'] == 0.05, name
    for name in no_decay:
        assert groups[name]['weight_decay'] == 0., name
    for name, mult in lr_mult.items():
        assert groups[name]['lr'] == pytest.approx(base_lr * mult), name


# --------------------------------------------------------------------------------------------
# Fine-tuning numbers per row
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize('path', PUBLISHED_FINETUNE, ids=_id)
def test_finetune_row_numbers(path):
    cfg, row = _load(path), FINETUNE_ROWS[path.stem]
    bb, head, ow = cfg.model.backbone, cfg.model.head, cfg.optim_wrapper

    # The pre-trained checkpoint: one variable, the last epoch of the matching pre-training.
    pre_cfg = _load(next(p for p in PRETRAIN_CONFIGS if p.stem == row.pretrain))
    assert cfg.pretrained == f'work_dirs/{row.pretrain}/epoch_{pre_cfg.train_cfg.max_epochs}.pth'
    assert (bb.init_cfg.type, bb.init_cfg.checkpoint, bb.init_cfg.prefix, bb.init_cfg.strict) \
        == ('Pretrained', cfg.pretrained, 'backbone.', True), 'never a silently partial load'
    text = path.read_text()
    assert re.search(r'^pretrained = ', text, re.M), 'the checkpoint path is a top-level variable'
    if row.top1:
        assert f'Published top-1: {row.top1}.' in text
    pre_row = PRETRAIN_ROWS[row.pretrain]
    assert pre_row.arch == row.arch

    # Batch, length, precision.
    loader = cfg.train_dataloader
    name = re.search(r'_(\d+)xb(\d+)(?:-accu(\d+))?-amp-', path.stem)
    assert (int(name[1]), int(name[2]), int(name[3] or 1)) == (row.gpus, row.batch, row.accum)
    assert loader.batch_size == row.batch
    assert ow.get('accumulative_counts', 1) == row.accum
    assert ow.type == 'AmpOptimWrapper'
    assert cfg.train_cfg.max_epochs == row.epochs and f'-{row.epochs}e_in1k' in path.stem
    assert cfg.auto_scale_lr.base_batch_size == row.gpus * row.batch
    assert (cfg.train_dataloader.dataset.type, cfg.val_dataloader.dataset.split) == (
        'ImageNet', 'val')
    ema = [h for h in cfg.get('custom_hooks', []) if 'EMA' in h['type']]
    assert bool(ema) == row.ema
    if ema:  # the official EMA: one update per optimizer step, 20-epoch momentum warm-up
        assert (ema[0]['type'], ema[0]['warmup_epochs'], ema[0]['warmup_ratio']) == (
            'OptimStepEMAHook', 20, 0.9)
    assert cfg.default_hooks.total_batch_check == dict(
        type='TotalBatchCheckHook', total_batch=row.gpus * row.batch * row.accum)
    assert bb.get('drop_path_rate', 0.) == row.drop_path
    warmup, main = cfg.param_scheduler
    assert warmup.type == 'LinearLR' and main.type == 'CosineAnnealingLR'
    assert warmup.convert_to_iter_based  # the warm-up moves every iteration in all protocols
    # RSB: mmcv's per-epoch cosine; BEiT / SparK: per iteration.
    assert main.convert_to_iter_based == (not row.protocol.startswith('rsb'))
    assert main.eta_min == 1e-6 and main.end == row.epochs
    train_pipeline = loader.dataset.pipeline
    test_pipeline = cfg.val_dataloader.dataset.pipeline
    rand_aug = _transform(train_pipeline, 'RandAugment')
    assert (rand_aug['policies'], rand_aug['num_policies'], rand_aug['magnitude_std']) == (
        'timm_increasing', 2, 0.5)
    rrc = _transform(train_pipeline, 'RandomResizedCrop')
    assert (rrc['backend'], rrc['interpolation']) == ('pillow', 'bicubic')
    augments = {a['type']: a['alpha'] for a in cfg.model.train_cfg.augments}

    if row.protocol == 'beit':
        assert (bb.type, bb.arch, bb.patch_size, bb.img_size) == ('BEiTViT', row.arch, 16, 224)
        assert bb.use_abs_pos_emb and bb.use_rel_pos_bias and not bb.use_shared_rel_pos_bias
        assert bb.layer_scale_init_value == 0.1
        assert (bb.out_type, bb.final_norm) == ('avg_featmap', False)
        assert cfg.model.neck is None
        assert (head.type, head.in_channels) == (
            'LinearClsHead', {'small': 768, 'base': 768, 'large': 1024}[row.arch])
        assert (head.loss.type, head.loss.label_smooth_val) == ('LabelSmoothLoss', 0.1)
        assert augments == {'Mixup': 0.8, 'CutMix': 1.0}
        assert rand_aug['magnitude_level'] == 9 and rrc['scale'] == 224
        assert _transform(train_pipeline, 'RandomErasing')['erase_prob'] == 0.25
        assert (ow.optimizer.type, ow.optimizer.weight_decay) == ('AdamW', 0.05)
        assert ow.optimizer.lr == pytest.approx(1e-2)  # 2.5e-3 x 1024 / 256
        assert row.gpus * row.batch * row.accum == 1024
        assert ow.constructor == 'LearningRateDecayOptimWrapperConstructor'
        assert ow.paramwise_cfg.layer_decay_rate == 0.65
        assert ow.clip_grad == dict(max_norm=5.0)
        assert (warmup.end, main.begin) == (20, 20)
        if row.ema:
            assert ema[0]['momentum'] == pytest.approx(4e-5)  # 0.99996
        if row.arch == 'large':
            assert loader.sampler.type == 'RepeatAugSampler'
        assert _transform(test_pipeline, 'ResizeEdge')['scale'] == 256
    elif row.protocol.startswith('rsb'):
        a2 = row.protocol == 'rsb-a2'
        resnet_type = ('A2MIMResNet', None) if row.arch == 200 else ('ResNet', 'learnable')
        assert (bb.type, bb.get('mask_token', 'learnable')) == resnet_type
        assert (bb.depth, bb.norm_cfg.type) == (row.arch, 'SyncBN')
        assert head.loss.type == 'CrossEntropyLoss' and head.loss.use_sigmoid  # BCE
        assert augments == {'Mixup': 0.1, 'CutMix': 1.0}
        assert (ow.optimizer.type, ow.optimizer.weight_decay) == ('Lamb', 0.02)
        assert ow.optimizer.lr == (5e-3 if a2 else 8e-3)
        # Official regex: bnN and biases only (the shortcut BN weight is decayed).
        assert ow.paramwise_cfg == dict(custom_keys={'bn': dict(decay_mult=0.),
                                                     'bias': dict(decay_mult=0.)})
        assert row.gpus * row.batch * row.accum == 2048
        # The cosine spans all epochs, warm-up included; warm-up from 1e-5.
        assert (warmup.start_factor, warmup.end, main.begin) == (1e-5, 5, 0)
        assert rand_aug['magnitude_level'] == (7 if a2 else 6)
        assert rrc['scale'] == (224 if a2 else 160)
        assert loader.sampler.type == ('RepeatAugSampler' if a2 else 'DefaultSampler')
        assert _transform(test_pipeline, 'ResizeEdge')['scale'] == 236
        assert _transform(test_pipeline, 'CenterCrop')['crop_size'] == 224
        if row.ema:
            assert ema[0]['momentum'] == pytest.approx(1e-4)  # 0.9999
    else:  # ConvNeXt, SparK-style
        # Stock default: global pooling, then the pre-trained final norm on the vector.
        assert (bb.type, bb.arch, bb.get('gap_before_final_norm', True)) == (
            'ConvNeXt', row.arch, True)
        assert head.in_channels == {'small': 768, 'base': 1024}[row.arch]
        assert (head.loss.type, head.loss.label_smooth_val) == ('LabelSmoothLoss', 0.1)
        assert augments == {'Mixup': 0.8, 'CutMix': 1.0}
        assert (ow.optimizer.type, ow.optimizer.lr, ow.optimizer.weight_decay) == (
            'AdamW', 4e-3, 0.05)
        assert 'constructor' not in ow  # no layer decay
        assert ow.paramwise_cfg == dict(custom_keys={
            'norm': dict(decay_mult=0.), 'bias': dict(decay_mult=0.),
            'gamma': dict(decay_mult=0.)})
        assert row.gpus * row.batch * row.accum == 4096
        # mmcv's by_epoch=False cosine over all iterations, warm-up from 1e-5 included.
        assert (warmup.start_factor, warmup.end, main.begin) == (1e-5, 5, 0)
        assert ema[0]['momentum'] == pytest.approx(1e-4)
        assert rand_aug['magnitude_level'] == 9
        assert _transform(train_pipeline, 'RandomErasing')['erase_prob'] == 0.25


def test_vit_finetune_layer_decay_matches_official_depths():
    """patch_embed/cls/pos: 0.65^(L+1), block i: 0.65^(L-i), fc norm and head: 1."""
    path = FINETUNE_DIR / 'vit-small-p16_a2mim-800e-pre_8xb128-amp-coslr-200e_in1k.py'
    cfg = _load(path)
    cfg.merge_from_dict(dict(model=dict(
        backbone=dict(arch=dict(_delete_=True, embed_dims=64, num_layers=2, num_heads=2,
                                feedforward_channels=128), img_size=64, init_cfg=None),
        head=dict(in_channels=64, num_classes=10))))
    groups = _groups_by_name(MODELS.build(cfg.model), cfg.optim_wrapper)
    base, rate, depth = cfg.optim_wrapper.optimizer.lr, 0.65, 2
    expected = {
        'backbone.patch_embed.projection.weight': rate**(depth + 1),
        'backbone.cls_token': rate**(depth + 1), 'backbone.pos_embed': rate**(depth + 1),
        'backbone.layers.0.attn.qkv.weight': rate**depth,
        'backbone.layers.1.ffn.layers.1.weight': rate**(depth - 1),
        'backbone.ln2.weight': 1., 'head.fc.weight': 1.,
    }
    for name, scale in expected.items():
        assert groups[name]['lr'] == pytest.approx(base * scale), name
    for name in ('backbone.ln2.weight', 'backbone.layers.0.gamma_1', 'backbone.pos_embed',
                 'backbone.layers.0.attn.q_bias', 'head.fc.bias'):
        assert groups[name]['weight_decay'] == 0., name
    assert groups['backbone.layers.0.attn.qkv.weight']['weight_decay'] == 0.05


# --------------------------------------------------------------------------------------------
# Tiny versions: in-process forward of every pre-training config, stock entry-point runs
# --------------------------------------------------------------------------------------------
TINY_SIZE = 64


def _tiny_pipeline(pipeline) -> list:
    pipeline = [dict(t) for t in copy.deepcopy(pipeline)]
    for t in pipeline:
        t.pop('_scope_', None)
        if t['type'] == 'RandomResizedCrop':
            t['scale'] = TINY_SIZE
        if t['type'] == 'SimMIMMaskGenerator':
            t['input_size'] = TINY_SIZE
    return pipeline


@pytest.mark.parametrize('path', PRETRAIN_CONFIGS, ids=_id)
def test_tiny_pretrain_forward_backward(path):
    """The real mask generator settings fit the backbone at its mask layer (tiny arch, 64 px)."""
    cfg = _tiny_model_cfg(_load(path))
    model = MODELS.build(cfg.model)
    model.init_weights()
    mask_gen = TRANSFORMS.build(_tiny_pipeline(cfg.train_dataloader.dataset.pipeline)[3])
    samples = []
    for _ in range(2):
        mask = mask_gen(dict(img=torch.zeros(TINY_SIZE, TINY_SIZE, 3).numpy()))['mask']
        samples.append(DataSample().set_mask(mask))
    inputs = torch.randint(0, 256, (2, 3, TINY_SIZE, TINY_SIZE)).float()
    data = model.data_preprocessor(dict(inputs=inputs, data_samples=samples), training=True)
    losses = model(**data, mode='loss')
    total = sum(losses.values())
    assert torch.isfinite(total)
    assert ('loss_fourier' in losses) == bool(cfg.model.head.get('fft_weight', 0.))
    total.backward()
    grad = model.backbone.mask_token.grad
    assert grad is not None and torch.isfinite(grad).all() and grad.abs().sum() > 0


def write_tiny_pretrain_config(config: Path, out: Path, data_root: Path,
                               num_images: int = 4) -> Path:
    """A tiny CPU version of a pre-training config, inheriting it through ``_base_``."""
    cfg = _load(config)
    backbone, neck_in = copy.deepcopy(TINY_BACKBONES[cfg.model.backbone.type])
    optim_wrapper = copy.deepcopy(cfg.optim_wrapper.to_dict())
    optim_wrapper.update(type='OptimWrapper', _delete_=True)  # AmpOptimWrapper needs a GPU
    optim_wrapper.pop('loss_scale', None)
    dataset = dict(_delete_=True, type='CustomDataset', data_root=str(data_root),
                   data_prefix='train', with_label=False, indices=num_images,
                   pipeline=_tiny_pipeline(cfg.train_dataloader.dataset.pipeline))
    out.write_text(f"""_base_ = {str(config)!r}
model = dict(backbone={backbone!r}, neck=dict(in_channels={neck_in}))
train_dataloader = dict(
    batch_size=2, num_workers=0, persistent_workers=False, pin_memory=False,
    dataset={dataset!r})
optim_wrapper = {optim_wrapper!r}
train_cfg = dict(max_epochs=1)
default_hooks = dict(logger=dict(interval=1), checkpoint=dict(interval=1),
                     knn_eval={TINY_KNN!r})
""")
    return out


# The configs' KNNEvalHook on the tiny folder: one crop per photo as bank and as queries.
TINY_KNN = dict(bank=dict(_delete_=True, type='CustomDataset', data_prefix='train'),
                query=dict(_delete_=True, type='CustomDataset', data_prefix='train'),
                bank_per_class=1, query_per_class=1, crop_size=TINY_SIZE, batch_size=7,
                num_workers=0)


def _assert_trained(work_dir: Path, iters: int = 2) -> None:
    assert (work_dir / 'epoch_1.pth').is_file()
    losses = [r['loss'] for r in read_scalars(work_dir) if 'loss' in r]
    assert len(losses) == iters and all(math.isfinite(v) for v in losses), losses
    # The pre-training runtime's k-NN hook evaluated after the last epoch.
    knn = [r for r in read_scalars(work_dir) if 'knn/top1' in r]
    assert [r['step'] for r in knn] == [iters] and 0 <= knn[0]['knn/top1'] <= 100, knn


# Each stock-entry-point run costs 7-15 s on 2 CPU cores, so by default a subset covering every
# backbone family, both algorithms, fp32 and AMP rows, gradient accumulation, the focal and
# non-focal Fourier losses and all three mask grids (p16, p32, p4) runs; the in-process
# forward/backward above covers every config. A2MIM_TEST_ALL_CONFIGS=1 runs all of them.
RUN_SUBSET = (
    'a2mim_vit-base-p16_8xb128-accu2-step-800e_in1k',
    'a2mim-simmim_vit-small-p16_8xb256-amp-step-800e_in1k',
    'a2mim_resnet101_8xb256-coslr-300e_in1k',
    'a2mim-simmim_resnet50_8xb256-amp-coslr-300e_in1k',
    'a2mim_convnext-small_8xb256-amp-coslr-300e_in1k',
    'a2mim-simmim_convnext-base_8xb256-amp-coslr-300e_in1k',
)  # plus ResNet-50 and the Swin-B A2MIM / SimMIM configs through `mim train` below
RUN_CONFIGS = PRETRAIN_CONFIGS if os.environ.get('A2MIM_TEST_ALL_CONFIGS') else [
    p for p in PRETRAIN_CONFIGS if p.stem in RUN_SUBSET]


def test_run_subset_names_exist():
    assert {p.stem for p in PRETRAIN_CONFIGS} >= set(RUN_SUBSET)


@pytest.mark.slow
@pytest.mark.parametrize('path', RUN_CONFIGS, ids=_id)
def test_tiny_pretrain_runs_through_mmpretrain_train(path, tmp_path, photo_dataset):
    config = write_tiny_pretrain_config(path, tmp_path / f'tiny_{path.name}', photo_dataset)
    run_stock_train(config, tmp_path / 'work')
    _assert_trained(tmp_path / 'work')


@pytest.mark.slow
@pytest.mark.parametrize('path', [
    CONFIGS / 'a2mim' / 'a2mim_resnet50_8xb256-coslr-300e_in1k.py',
    CONFIGS / 'a2mim' / 'a2mim_swin-base-w6_8xb128-accu2-coslr-100e_in1k-192px.py',
    CONFIGS / 'simmim_baselines' /
    'a2mim-simmim_swin-base-w6_8xb128-accu2-coslr-100e_in1k-192px.py',
], ids=_id)
def test_tiny_pretrain_runs_through_mim_train(path, tmp_path, photo_dataset):
    config = write_tiny_pretrain_config(path, tmp_path / f'tiny_{path.name}', photo_dataset)
    mim = Path(sys.executable).parent / 'mim'
    env = {k: v for k, v in os.environ.items() if k != 'TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD'}
    cmd = [str(mim), 'train', 'mmpretrain', str(config), '--gpus', '0', '--work-dir',
           str(tmp_path / 'work')]
    proc = subprocess.run(cmd, cwd=REPO_ROOT, env=env, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, f'{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}'
    _assert_trained(tmp_path / 'work')


# --------------------------------------------------------------------------------------------
# Official configurations without a published ImageNet row: Swin (generic injection), ConvNeXt-T
# --------------------------------------------------------------------------------------------
SWIN_PRETRAIN = sorted(p for p in PRETRAIN_CONFIGS if 'swin' in p.stem)


@pytest.mark.parametrize('path', SWIN_PRETRAIN, ids=_id)
def test_swin_pretrain_numbers(path):
    """Official A2MIM Swin bases (openmixup `_base_/models/{a2mim,simmim}/swin_*.py`) with the
    official SimMIM Swin-B schedule, on MMPretrain's stock SwinTransformer."""
    cfg = _load(path)
    a2mim = path.stem.startswith('a2mim_')
    arch = 'base' if 'swin-base' in path.stem else 'tiny'
    model, bb, head = cfg.model, cfg.model.backbone, cfg.model.head
    assert (model.type, model.input_fill) == ('A2MIM', 'mean' if a2mim else None)
    assert (bb.type, bb.arch, bb.img_size, bb.drop_path_rate, tuple(bb.out_indices)) == (
        'SwinTransformer', arch, 192, 0., (3, ))
    assert bb.stage_cfgs.block_cfgs.window_size == 6
    assert model.mask_token == dict(at='patch_embed', on='output', kind='learnable',
                                    replace=not a2mim, mask_init=0., token_init='trunc_normal')
    assert (model.neck.in_channels, model.neck.encoder_stride) == (
        {'base': 1024, 'tiny': 768}[arch], 32)
    assert head.loss.type == 'ElementwiseL1Loss'
    if a2mim:
        assert (head.fft_weight, head.fft_focal, head.fft_unmask_replace,
                head.fft_unmask_weight, head.unmask_weight) == (0.5, True, 'mixed', 0., 0.)
    else:
        assert head.get('fft_weight', 0.) == 0.
    pipeline = cfg.train_dataloader.dataset.pipeline
    rrc = _transform(pipeline, 'RandomResizedCrop')
    assert (rrc['scale'], tuple(rrc['crop_ratio_range'])) == (192, (0.67, 1.0))
    assert _transform(pipeline, 'SimMIMMaskGenerator') == dict(
        type='SimMIMMaskGenerator', input_size=192, mask_patch_size=32, model_patch_size=4,
        mask_ratio=0.6)
    ow = cfg.optim_wrapper
    assert (ow.type, ow.accumulative_counts, cfg.train_dataloader.batch_size) == (
        'OptimWrapper', 2, 128)
    assert ow.optimizer.lr == pytest.approx(8e-4) and ow.clip_grad == dict(max_norm=5.0)
    assert set(ow.paramwise_cfg.custom_keys) == {
        'norm', 'bias', 'mask_token', 'absolute_pos_embed', 'relative_position_bias_table'}
    warmup, main = cfg.param_scheduler
    assert warmup.start_factor == pytest.approx(4e-6) and warmup.end == 10
    assert (main.begin, main.end, main.eta_min) == (0, 100, pytest.approx(4e-5))
    assert cfg.train_cfg.max_epochs == 100
    assert cfg.default_hooks.total_batch_check.total_batch == 2048
    assert cfg.auto_scale_lr.base_batch_size == 1024


@pytest.mark.parametrize('path', SWIN_PRETRAIN, ids=_id)
def test_swin_pretrain_model_is_the_stock_backbone_plus_the_mask_token(path):
    """Full size: the dry run finds the token on the stride-4 patch embeddings; the backbone's
    state dict is the stock SwinTransformer's plus exactly ``mask_token``."""
    cfg = _load(path)
    model = MODELS.build(cfg.model)
    injection = model.mask_injection
    assert injection.dry_run.stride == 4 and injection.layout.kind == 'NLC'
    embed = {'base': 128, 'tiny': 96}['base' if 'swin-base' in path.stem else 'tiny']
    assert tuple(model.backbone.mask_token.shape) == (1, 1, embed)
    assert injection.dry_run.output_shape == (8 * embed, 6, 6)
    stock = MODELS.build(dict(cfg.model.backbone))
    assert set(model.backbone.state_dict()) - set(stock.state_dict()) == {'mask_token'}
    assert set(stock.state_dict()) <= set(model.backbone.state_dict())


def test_convnext_tiny_configs():
    """The official ConvNeXt-T row: pre-training as ConvNeXt-S (openmixup
    `convnext_t_l3_sz224_init_8xb256_cos_ep300.py`), fine-tuning `convnext_t_spark_ft_..._ep400`."""
    pre = _load(CONFIGS / 'a2mim' / 'a2mim_convnext-tiny_8xb256-amp-coslr-300e_in1k.py')
    small = _load(CONFIGS / 'a2mim' / 'a2mim_convnext-small_8xb256-amp-coslr-300e_in1k.py')
    assert (pre.model.backbone.arch, pre.model.neck.in_channels) == ('tiny', 768)
    for key in ('optim_wrapper', 'param_scheduler', 'train_cfg', 'train_dataloader'):
        assert pre[key] == small[key], key
    assert pre.model.head == small.model.head and pre.model.head.fft_weight == 0.

    ft = _load(CONFIGS / 'a2mim' / 'benchmarks' /
               'convnext-tiny_a2mim-300e-pre_8xb256-accu2-amp-coslr-400e_in1k.py')
    bb, ow = ft.model.backbone, ft.optim_wrapper
    assert (bb.type, bb.arch, bb.drop_path_rate) == ('ConvNeXt', 'tiny', 0.1)
    assert ft.pretrained == 'work_dirs/a2mim_convnext-tiny_8xb256-amp-coslr-300e_in1k/epoch_300.pth'
    assert (bb.init_cfg.checkpoint, bb.init_cfg.strict) == (ft.pretrained, True)
    assert (ow.optimizer.lr, ow.optimizer.weight_decay, ow.accumulative_counts) == (4e-4, 0.01, 2)
    assert ow.constructor == 'LearningRateDecayOptimWrapperConstructor'
    assert ow.paramwise_cfg.layer_decay_rate == 0.7
    assert ft.train_cfg.max_epochs == 400 and ft.param_scheduler[1].end == 400
    model = _build(ft.model)
    groups = _groups_by_name(model, ow)
    lrs = {n: g['lr'] for n, g in groups.items()}
    assert lrs['head.fc.weight'] == pytest.approx(4e-4)
    assert lrs['backbone.downsample_layers.0.0.weight'] < \
        lrs['backbone.stages.3.0.depthwise_conv.weight'] < 4e-4
    assert groups['backbone.stages.0.0.norm.weight']['weight_decay'] == 0.


def _unscoped(value):
    """A config value as plain dicts and lists without mmengine's ``_scope_`` tags."""
    if isinstance(value, dict):
        return {k: _unscoped(v) for k, v in value.items() if k != '_scope_'}
    if isinstance(value, (list, tuple)):
        return [_unscoped(v) for v in value]
    return value


def test_swin_finetune_is_mmpretrains_simmim_recipe():
    ft = _load(CONFIGS / 'a2mim' / 'benchmarks' /
               'swin-base-w6_a2mim-100e-pre_8xb256-coslr-100e_in1k-192px.py')
    stock = Config.fromfile(str(MMPRETRAIN_CONFIGS / 'simmim' / 'benchmarks' /
                                'swin-base-w6_8xb256-coslr-100e_in1k-192px.py'))
    # An inherited `mmpretrain::` base tags its dicts with `_scope_`; the values are compared.
    for key in ('optim_wrapper', 'param_scheduler', 'train_cfg', 'train_dataloader'):
        assert _unscoped(ft[key]) == _unscoped(stock[key]), key
    bb = ft.model.backbone
    assert (bb.type, bb.arch, bb.img_size) == ('SwinTransformer', 'base', 192)
    assert (bb.init_cfg.type, bb.init_cfg.prefix, bb.init_cfg.strict) == (
        'Pretrained', 'backbone.', True)
    assert ft.pretrained.endswith('a2mim_swin-base-w6_8xb128-accu2-coslr-100e_in1k-192px/'
                                  'epoch_100.pth')
    assert ft.default_hooks.total_batch_check.total_batch == 2048
