"""Tiny CPU versions of the A2MIM pre-training and of the MMDetection transfer configs."""
import copy
import importlib.util
import json
import sys
from pathlib import Path
from typing import Dict, Optional

import numpy as np
import torch
from mmengine.config import Config
from mmengine.registry import init_default_scope
from mmengine.runner import Runner

REPO_ROOT = Path(__file__).resolve().parents[2]
if str(REPO_ROOT) not in sys.path:  # `projects.det.a2mim_det` is imported from the repo root
    sys.path.insert(0, str(REPO_ROOT))

DET_CONFIGS = REPO_ROOT / 'projects' / 'det' / 'configs'
MEAN_STD = dict(mean=[123.675, 116.28, 103.53], std=[58.395, 57.12, 57.375])
CLASSES = ('round', 'square')
DET_SIZE = 128  # input side of the tiny detection runs
TINY_VIT_ARCH = dict(embed_dims=64, num_layers=4, num_heads=4, feedforward_channels=128)

# Tiny pre-training backbones, per family: (A2MIM backbone, decoder in_channels, encoder stride,
# pre-training input size, model patch size of the mask).
PRETRAIN = {
    'resnet': (dict(type='A2MIMResNet', depth=50, mask_layer=3, mask_init=1e-6), 2048, 32, 64,
               16),
    'vit': (dict(type='A2MIMViT', arch=TINY_VIT_ARCH, img_size=DET_SIZE, patch_size=16,
                 mask_layer=0), 64, 16, DET_SIZE, 16),
    'convnext': (dict(type='A2MIMConvNeXt', arch='atto', mask_layer=3, mask_init=1e-6), 320,
                 32, 64, 32),
}

# Tiny versions of the det configs, per family: (config, backbone overrides, neck overrides).
DET = {
    'c4': ('mask-rcnn_r50-c4_a2mim_ms-1x_coco.py', {}, None),
    'fpn': ('mask-rcnn_r50_fpn_a2mim_ms-1x_coco.py', {}, None),
    'vit': ('mask-rcnn_vit-base-p16_a2mim_sfp-giou-4conv1f_1x_coco.py',
            dict(arch=TINY_VIT_ARCH, img_size=(DET_SIZE, DET_SIZE), out_indices=(0, 1, 2, 3),
                 drop_path_rate=0.),
            [dict(embed_dims=64), dict(in_channels=[64] * 4)]),
    'convnext': ('mask-rcnn_convnext-small_a2mim_fpn_ms-1x_coco.py',
                 dict(arch='atto', drop_path_rate=0.), dict(in_channels=[40, 80, 160, 320])),
}


def pretrain_a2mim(family: str, data_root: Path, work_dir: Path) -> Path:
    """Run a 2-iteration A2MIM pre-training in-process; return its runner checkpoint."""
    backbone, neck_in, stride, size, patch = PRETRAIN[family]
    cfg = Config(dict(
        default_scope='mmpretrain',
        work_dir=str(work_dir),
        model=dict(
            type='A2MIM',
            data_preprocessor=dict(type='SelfSupDataPreprocessor', to_rgb=True, **MEAN_STD),
            backbone=backbone,
            neck=dict(type='A2MIMLinearDecoder', in_channels=neck_in, encoder_stride=stride),
            head=dict(type='A2MIMHead', loss=dict(type='FocalL1Loss'), fft_weight=0.5,
                      fft_focal=True, fft_unmask_replace='mixed', fft_unmask_weight=1e-3)),
        train_dataloader=dict(
            batch_size=2, num_workers=0, persistent_workers=False,
            sampler=dict(type='DefaultSampler', shuffle=True),
            collate_fn=dict(type='default_collate'),
            dataset=dict(
                type='CustomDataset', data_root=str(data_root), data_prefix='train',
                with_label=False,
                pipeline=[
                    dict(type='LoadImageFromFile'),
                    dict(type='RandomResizedCrop', scale=size, crop_ratio_range=(0.8, 1.0)),
                    dict(type='RandomFlip', prob=0.5),
                    dict(type='SimMIMMaskGenerator', input_size=size, mask_patch_size=32,
                         model_patch_size=patch, mask_ratio=0.6),
                    dict(type='PackInputs')])),
        optim_wrapper=dict(type='OptimWrapper',
                           optimizer=dict(type='AdamW', lr=1e-3, weight_decay=0.05)),
        train_cfg=dict(type='IterBasedTrainLoop', max_iters=2),
        default_hooks=dict(
            logger=dict(type='LoggerHook', interval=1),
            checkpoint=dict(type='CheckpointHook', interval=2, by_epoch=False)),
        log_processor=dict(by_epoch=False),
        randomness=dict(seed=0),
        log_level='WARNING'))
    init_default_scope('mmpretrain')
    Runner.from_cfg(cfg).train()
    ckpt = work_dir / 'iter_2.pth'
    assert ckpt.is_file()
    return ckpt


def export_backbone(src: Path, dst: Path, target: str = 'mmdet') -> Path:
    """Run ``tools/export_backbone.py SRC DST --target TARGET`` in-process."""
    spec = importlib.util.spec_from_file_location('export_backbone',
                                                  REPO_ROOT / 'tools' / 'export_backbone.py')
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    assert tool.main([str(src), str(dst), '--target', target]) == 0
    return dst


def make_tiny_coco(root: Path, n_train: int = 4, n_val: int = 2) -> Path:
    """A COCO-format instance dataset made of the bundled photos, 160 x 120 px each.

    Every image gets three objects: an ellipse ('round') and a rotated square ('square'),
    given as polygons, with their boxes.
    """
    from PIL import Image

    from a2mim_plugin.datasets import load_demo_photos

    photos = list(load_demo_photos().items())[:n_train + n_val]
    rng = np.random.default_rng(0)
    (root / 'images').mkdir(parents=True, exist_ok=True)
    width, height = 160, 120
    splits = {'train': photos[:n_train], 'val': photos[n_train:]}
    ann_id = 1
    for split, items in splits.items():
        images, anns = [], []
        for img_id, (stem, photo) in enumerate(items, start=1):
            name = f'{split}_{stem}.jpg'
            Image.fromarray(photo).resize((width, height), Image.BILINEAR).save(
                root / 'images' / name, quality=95)
            images.append(dict(id=img_id, file_name=name, width=width, height=height))
            for k in range(3):
                cat = 1 + k % 2
                w, h = rng.uniform(30, 70), rng.uniform(30, 60)
                cx, cy = rng.uniform(w / 2, width - w / 2), rng.uniform(h / 2, height - h / 2)
                n = 16 if cat == 1 else 4
                t = np.linspace(0, 2 * np.pi, n, endpoint=False) + (0 if cat == 1 else 0.3)
                xs = np.clip(cx + w / 2 * np.cos(t), 0, width - 1)
                ys = np.clip(cy + h / 2 * np.sin(t), 0, height - 1)
                x0, y0 = float(xs.min()), float(ys.min())
                bw, bh = float(xs.max()) - x0, float(ys.max()) - y0
                poly = np.stack([xs, ys], 1).reshape(-1).round(2).tolist()
                anns.append(dict(id=ann_id, image_id=img_id, category_id=cat,
                                 bbox=[x0, y0, bw, bh], area=bw * bh * 0.8,
                                 segmentation=[poly], iscrowd=0))
                ann_id += 1
        categories = [dict(id=i + 1, name=c) for i, c in enumerate(CLASSES)]
        (root / f'{split}.json').write_text(json.dumps(
            dict(images=images, annotations=anns, categories=categories)))
    return root


def _pipelines(fixed_canvas: bool):
    pad = [dict(type='Pad', size=(DET_SIZE, DET_SIZE), pad_val=dict(img=(114, 114, 114)))] \
        if fixed_canvas else []
    train = [dict(type='LoadImageFromFile'),
             dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
             dict(type='RandomChoiceResize', scales=[(DET_SIZE, 96), (DET_SIZE, DET_SIZE)],
                  keep_ratio=True),
             dict(type='RandomFlip', prob=0.5), *pad,
             dict(type='PackDetInputs')]
    test = [dict(type='LoadImageFromFile'),
            dict(type='Resize', scale=(DET_SIZE, DET_SIZE), keep_ratio=True), *pad,
            dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
            dict(type='PackDetInputs',
                 meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor'))]
    return train, test


def tiny_det_cfg(family: str, checkpoint: Optional[Path], coco_root: Path,
                 work_dir: Path, prefix: str = 'backbone.') -> Config:
    """The real det config of ``family`` at tiny scale, loading ``checkpoint``."""
    config, backbone, neck = DET[family]
    cfg = Config.fromfile(str(DET_CONFIGS / config))
    model = cfg.model
    model.backbone.update(copy.deepcopy(backbone))
    if isinstance(neck, list):
        for sub, override in zip(model.neck, neck):
            sub.update(override)
    elif neck:
        model.neck.update(neck)
    inits = [model.backbone.init_cfg]
    if family == 'c4':
        inits.append(model.roi_head.shared_head.init_cfg)
    for init_cfg in inits:
        init_cfg.update(checkpoint=str(checkpoint) if checkpoint else '', prefix=prefix)
    model.roi_head.bbox_head.num_classes = len(CLASSES)
    model.roi_head.mask_head.num_classes = len(CLASSES)
    model.train_cfg.rpn_proposal.update(nms_pre=200, max_per_img=64)
    model.train_cfg.rcnn.sampler.num = 32
    model.test_cfg.rpn.update(nms_pre=200, max_per_img=32)
    model.test_cfg.rcnn.max_per_img = 20

    train_pipeline, test_pipeline = _pipelines(fixed_canvas=family == 'vit')

    def loader(split, pipeline, shuffle):
        ds = dict(type='CocoDataset', data_root=str(coco_root), ann_file=f'{split}.json',
                  data_prefix=dict(img='images/'), metainfo=dict(classes=CLASSES),
                  pipeline=pipeline)
        if split == 'train':
            ds['filter_cfg'] = dict(filter_empty_gt=True, min_size=8)
        else:
            ds['test_mode'] = True
        return dict(batch_size=2, num_workers=0, persistent_workers=False, drop_last=False,
                    sampler=dict(type='DefaultSampler', shuffle=shuffle), dataset=ds)

    cfg.train_dataloader = loader('train', train_pipeline, True)
    cfg.val_dataloader = loader('val', test_pipeline, False)
    cfg.test_dataloader = cfg.val_dataloader
    cfg.val_evaluator = dict(type='CocoMetric', ann_file=str(coco_root / 'val.json'),
                             metric=['bbox', 'segm'], format_only=False)
    cfg.test_evaluator = cfg.val_evaluator
    cfg.train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=1, val_interval=1)
    cfg.default_hooks.checkpoint = None
    cfg.default_hooks.logger.interval = 1
    cfg.work_dir = str(work_dir)
    cfg.log_level = 'WARNING'
    cfg.randomness = dict(seed=0)
    return cfg


def backbone_state(path: Path, prefix: str = 'backbone.') -> Dict[str, torch.Tensor]:
    """The ``prefix`` tensors of a checkpoint, prefix stripped (weights-only load)."""
    ckpt = torch.load(path, map_location='cpu')
    state = ckpt.get('state_dict', ckpt)
    return {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
