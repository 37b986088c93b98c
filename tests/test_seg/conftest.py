"""Session fixtures for the segmentation transfer tests (``projects/seg``).

* ``seg_dataset``: a tiny ADE20K-format dataset made from the bundled real photos.
* ``a2mim_checkpoints``: one tiny A2MIM pre-training run per backbone family (ResNet-18, a
  64-d 4-block BEiT-style ViT at 64 px, ConvNeXt-atto) from the repository's pre-training model
  configs, plus the ``tools/export_backbone.py`` output of each.
"""
import functools
import importlib.util
from pathlib import Path
from typing import Dict

import numpy as np
import pytest

from seg_helpers import (EXPORT_TOOL, IMAGE_HW, NUM_LABELS, PRETRAIN_BASES, PRETRAIN_SIZE,
                         PRETRAIN_SPECS)

PRETRAIN_CFG = '''
_base_ = [{base!r}, 'mmpretrain::_base_/default_runtime.py']
custom_imports = dict(imports=['a2mim_plugin'], allow_failed_imports=False)
model = dict(backbone={backbone!r}, neck=dict(in_channels={neck_in}))
train_dataloader = dict(
    batch_size=2, num_workers=0, persistent_workers=False,
    sampler=dict(type='DefaultSampler', shuffle=True),
    collate_fn=dict(type='default_collate'),
    dataset=dict(type='CustomDataset', data_root={data_root!r}, data_prefix='train',
                 with_label=False, indices=4,
                 pipeline=[dict(type='LoadImageFromFile'),
                           dict(type='RandomResizedCrop', scale={size},
                                crop_ratio_range=(0.8, 1.0)),
                           dict(type='RandomFlip', prob=0.5),
                           dict(type='SimMIMMaskGenerator', input_size={size}, mask_patch_size=32,
                                model_patch_size={patch}, mask_ratio=0.6),
                           dict(type='PackInputs')]))
optim_wrapper = dict(type='OptimWrapper', optimizer=dict(type='AdamW', lr=1e-3, weight_decay=0.05))
train_cfg = dict(type='IterBasedTrainLoop', max_iters=2)
default_hooks = dict(logger=dict(type='LoggerHook', interval=1),
                     checkpoint=dict(type='CheckpointHook', interval=2, by_epoch=False))
log_processor = dict(by_epoch=False)
randomness = dict(seed=0)
'''


def _labels_from_photo(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """ADE20K-style label map: 1..NUM_LABELS from intensity quantiles, 0 border, 255 block."""
    gray = image.astype(np.float32).mean(axis=2)
    edges = np.quantile(gray, np.linspace(0, 1, NUM_LABELS + 1)[1:-1])
    label = (np.digitize(gray, edges) + 1).astype(np.uint8)  # 1..NUM_LABELS
    label[:4], label[-4:], label[:, :4], label[:, -4:] = 0, 0, 0, 0  # ADE "other"
    h, w = label.shape
    top, left = int(rng.integers(8, h // 2)), int(rng.integers(8, w // 2))
    label[top:top + 12, left:left + 12] = 255  # an explicitly ignored region
    return label


@pytest.fixture(scope='session')
def seg_dataset(tmp_path_factory) -> Path:
    """``images/{training,validation}/*.jpg`` + ``annotations/.../*.png`` from real photos."""
    from PIL import Image

    from a2mim_plugin.datasets import load_demo_photos

    root = tmp_path_factory.mktemp('ade_tiny')
    photos = load_demo_photos()
    splits = {'training': ['astronaut', 'chelsea', 'coffee', 'motorcycle_left'],
              'validation': ['rocket', 'camera']}
    rng = np.random.default_rng(0)
    for split, names in splits.items():
        (root / 'images' / split).mkdir(parents=True)
        (root / 'annotations' / split).mkdir(parents=True)
        for name in names:
            image = Image.fromarray(photos[name]).resize(IMAGE_HW[::-1], Image.BICUBIC)
            image.save(root / 'images' / split / f'{name}.jpg', quality=92)
            label = _labels_from_photo(np.asarray(image), rng)
            Image.fromarray(label).save(root / 'annotations' / split / f'{name}.png')
    return root


def _export_tool():
    spec = importlib.util.spec_from_file_location('a2mim_export_backbone', EXPORT_TOOL)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope='session', autouse=True)
def _cached_package_config_lookup():
    """Resolving an ``mmseg::`` base reads MMSegmentation's ~200 metafiles every time (2-3 s
    per config on these CPUs); remember the answers for the session."""
    from mmengine.config import utils

    original = utils._get_cfg_metainfo
    utils._get_cfg_metainfo = functools.lru_cache(maxsize=None)(original)
    yield
    utils._get_cfg_metainfo = original


@pytest.fixture(scope='session')
def a2mim_checkpoints(tmp_path_factory, photo_dataset) -> Dict[str, Dict[str, Path]]:
    """``{family: {'full': runner checkpoint, 'exported': backbone-only checkpoint}}``.

    Each family pre-trains for 2 iterations with MMEngine's ``Runner`` (in this process, to
    spare the start-up of a new interpreter), and ``tools/export_backbone.py --target mmseg``
    reduces the checkpoint to the backbone.
    """
    from mmengine.config import Config
    from mmengine.runner import Runner

    root = tmp_path_factory.mktemp('a2mim_pretrain')
    export = _export_tool()
    checkpoints = {}
    for family, (base, backbone, neck_in, patch) in PRETRAIN_SPECS.items():
        config = root / f'tiny_a2mim_pretrain_{family}.py'
        config.write_text(PRETRAIN_CFG.format(
            base=str(PRETRAIN_BASES / base), backbone=backbone, neck_in=neck_in,
            data_root=str(photo_dataset), size=PRETRAIN_SIZE, patch=patch))
        cfg = Config.fromfile(str(config))
        cfg.work_dir = str(root / family)
        Runner.from_cfg(cfg).train()
        full = root / family / 'iter_2.pth'
        assert full.is_file(), sorted(p.name for p in (root / family).iterdir())
        exported = root / f'{family}_backbone.pth'
        assert export.main([str(full), str(exported), '--target', 'mmseg']) == 0
        checkpoints[family] = dict(full=full, exported=exported)
    return checkpoints
