"""Every MMDetection transfer config parses and builds, with the protocol the issue asks for."""
import pytest
import torch
from mmengine.config import Config
from mmengine.registry import init_default_scope
from mmdet.registry import MODELS

from det_helpers import CLASSES, DET_CONFIGS

CONFIGS = sorted(p.name for p in DET_CONFIGS.glob('*.py'))
MS_SCALES = [(1333, s) for s in range(640, 801, 32)]


def load(name: str) -> Config:
    return Config.fromfile(str(DET_CONFIGS / name))


def schedule(cfg: Config):
    warmup, steps = cfg.param_scheduler
    assert warmup.type == 'LinearLR' and not warmup.by_epoch
    assert steps.type == 'MultiStepLR' and steps.by_epoch
    return cfg.train_cfg.max_epochs, list(steps.milestones), warmup.end


def test_all_expected_configs_exist():
    assert CONFIGS == sorted([
        'mask-rcnn_convnext-base_a2mim_fpn_ms-1x_coco.py',
        'mask-rcnn_convnext-small_a2mim_fpn_ms-1x_coco.py',
        'mask-rcnn_r50-c4_a2mim_ms-1x_coco.py',
        'mask-rcnn_r50-c4_a2mim_ms-2x_coco.py',
        'mask-rcnn_r50_fpn_a2mim_ms-1x_coco.py',
        'mask-rcnn_r50_fpn_a2mim_ms-2x_coco.py',
        'mask-rcnn_vit-base-p16_a2mim_sfp-giou-4conv1f_1x_coco.py',
    ])


@pytest.mark.parametrize('name', CONFIGS)
def test_config_parses_and_builds(name):
    cfg = load(name)
    assert cfg.default_scope == 'mmdet'
    assert cfg.custom_imports.allow_failed_imports is False
    assert 'a2mim_plugin' in cfg.custom_imports.imports
    init_cfg = cfg.model.backbone.init_cfg
    assert init_cfg.type == 'Pretrained' and init_cfg.strict is True
    assert init_cfg.prefix == 'backbone.'
    assert init_cfg.checkpoint == cfg.pretrained == ''  # one place, set by the user
    assert cfg.val_evaluator.type == 'CocoMetric'
    assert cfg.val_evaluator.metric == ['bbox', 'segm']
    assert cfg.default_hooks.checkpoint.type == 'mmpretrain.AtomicCheckpointHook'

    init_default_scope('mmdet')
    model_cfg = cfg.model
    if 'vit' in name:  # the 64 x 64-token rel-pos index of the 1024 px ViT-B takes ~10 s
        model_cfg = cfg.model.copy()
        model_cfg.backbone = dict(cfg.model.backbone, img_size=(256, 256))
    model = MODELS.build(model_cfg)
    assert type(model).__name__ == 'MaskRCNN'
    # A config without a checkpoint refuses to initialise instead of training from scratch.
    if 'vit' not in name:
        with pytest.raises(ValueError, match='needs a checkpoint path'):
            model.init_weights()


@pytest.mark.parametrize('arch', ['c4', 'fpn'])
def test_resnet50_protocol(arch):
    one, two = (load(f'mask-rcnn_r50{"-c4" if arch == "c4" else "_fpn"}_a2mim_ms-{s}_coco.py')
                for s in ('1x', '2x'))
    for cfg in (one, two):
        backbone = cfg.model.backbone
        assert backbone.type == 'ResNet' and backbone.depth == 50
        assert backbone.frozen_stages == -1 and backbone.norm_eval is False
        assert backbone.norm_cfg.type == 'SyncBN' and backbone.style == 'pytorch'
        assert cfg.model.data_preprocessor.bgr_to_rgb is True
        assert cfg.model.data_preprocessor.mean == [123.675, 116.28, 103.53]
        resize = cfg.train_dataloader.dataset.pipeline[2]
        assert resize.type == 'RandomChoiceResize'
        assert [tuple(s) for s in resize.scales] == MS_SCALES
        optim = cfg.optim_wrapper.optimizer
        assert (optim.type, optim.lr, optim.momentum, optim.weight_decay) == \
            ('SGD', 0.02, 0.9, 1e-4)
    assert schedule(one) == (12, [8, 11], 500)
    assert schedule(two) == (24, [16, 23], 1000)
    if arch == 'c4':
        head = one.model.roi_head.shared_head
        assert head.type == 'ResLayerExtraNorm' and head.norm_cfg.type == 'SyncBN'
        assert head.norm_eval is False
        assert head.init_cfg.type == 'Pretrained' and head.init_cfg.strict is True
        assert head.init_cfg.prefix == 'backbone.'
        assert 'mmpretrain.models.utils.res_layer_extra_norm' in one.custom_imports.imports
    else:
        assert one.model.neck.norm_cfg.type == 'SyncBN'
        assert one.model.roi_head.bbox_head.type == 'Shared4Conv1FCBBoxHead'
        assert one.model.roi_head.bbox_head.norm_cfg.type == 'SyncBN'


def test_c4_one_checkpoint_feeds_backbone_and_shared_head(tmp_path):
    """Editing the one `pretrained` line sets both users of the checkpoint."""
    text = (DET_CONFIGS / 'mask-rcnn_r50-c4_a2mim_ms-1x_coco.py').read_text()
    assert text.count("pretrained = ''") == 1
    edited = tmp_path / 'edited.py'
    edited.write_text(text.replace("pretrained = ''", "pretrained = 'ckpt.pth'"))
    cfg = Config.fromfile(str(edited))
    assert cfg.model.backbone.init_cfg.checkpoint == 'ckpt.pth'
    assert cfg.model.roi_head.shared_head.init_cfg.checkpoint == 'ckpt.pth'


def test_vit_protocol():
    cfg = load('mask-rcnn_vit-base-p16_a2mim_sfp-giou-4conv1f_1x_coco.py')
    backbone = cfg.model.backbone
    assert backbone.type == 'mmpretrain.BEiTViT' and backbone.arch == 'base'
    assert backbone.out_indices == (3, 5, 7, 11) and backbone.final_norm is False
    assert backbone.use_abs_pos_emb and backbone.use_rel_pos_bias
    assert backbone.layer_scale_init_value == 0.1 and backbone.drop_path_rate == 0.2
    sfp, fpn = cfg.model.neck
    assert sfp.type == 'SimpleFeaturePyramid' and tuple(sfp.rescales) == (4, 2, 1, 0.5)
    assert fpn.type == 'FPN' and fpn.in_channels == [768] * 4
    assert cfg.model.rpn_head.anchor_generator.strides == [4, 8, 16, 32, 64]
    bbox_head = cfg.model.roi_head.bbox_head
    assert bbox_head.type == 'Shared4Conv1FCBBoxHead' and bbox_head.reg_decoded_bbox
    assert bbox_head.loss_bbox == dict(type='GIoULoss', loss_weight=10.0)
    assert cfg.optim_wrapper.constructor == 'BackboneLayerDecayOptimWrapperConstructor'
    assert cfg.optim_wrapper.optimizer.type == 'AdamW'
    assert cfg.optim_wrapper.optimizer.lr == 3e-4
    assert cfg.optim_wrapper.optimizer.weight_decay == 0.05
    assert cfg.optim_wrapper.paramwise_cfg.layer_decay_rate == 0.75
    assert schedule(cfg) == (12, [9, 11], 500)
    # SimpleFeaturePyramid; the constructor and the rel-pos resize come with a2mim_plugin
    assert cfg.custom_imports.imports == ['a2mim_plugin', 'projects.det.a2mim_det']


def test_vit_multi_level_features_become_a_stride_pyramid():
    """Blocks 4/6/8/12 (all stride 16) become strides 4/8/16/32 before the FPN."""
    cfg = load('mask-rcnn_vit-base-p16_a2mim_sfp-giou-4conv1f_1x_coco.py')
    init_default_scope('mmdet')
    sfp = MODELS.build(dict(cfg.model.neck[0], embed_dims=32, norm_cfg=dict(type='BN')))
    outs = sfp([torch.rand(2, 32, 8, 8) for _ in range(4)])
    assert [o.shape[-1] for o in outs] == [32, 16, 8, 4]
    with pytest.raises(ValueError, match='out_indices'):
        sfp([torch.rand(2, 32, 8, 8)] * 3)


@pytest.mark.parametrize('arch,channels', [('small', [96, 192, 384, 768]),
                                           ('base', [128, 256, 512, 1024])])
def test_convnext_protocol(arch, channels):
    cfg = load(f'mask-rcnn_convnext-{arch}_a2mim_fpn_ms-1x_coco.py')
    backbone = cfg.model.backbone
    assert backbone.type == 'mmpretrain.ConvNeXt' and backbone.arch == arch
    assert backbone.out_indices == (0, 1, 2, 3) and backbone.gap_before_final_norm is False
    assert backbone.init_cfg.allow_missing == [r'^norm[012]\.']
    assert cfg.model.neck.in_channels == channels
    assert cfg.optim_wrapper.constructor == 'BackboneLayerDecayOptimWrapperConstructor'
    assert cfg.custom_imports.imports == ['a2mim_plugin']  # registers the constructor
    assert schedule(cfg) == (12, [8, 11], 500)


@pytest.mark.parametrize('name', CONFIGS)
def test_real_pipelines_run(name, tiny_coco):
    """The configs' own train / test pipelines on real photos (ViT: a fixed 1024 canvas)."""
    from mmdet.registry import DATASETS

    cfg = load(name)
    init_default_scope('mmdet')
    for loader, split in ((cfg.train_dataloader, 'train'), (cfg.val_dataloader, 'val')):
        dataset = DATASETS.build(dict(
            type='CocoDataset', data_root=str(tiny_coco), ann_file=f'{split}.json',
            data_prefix=dict(img='images/'), metainfo=dict(classes=CLASSES),
            test_mode=split == 'val', pipeline=loader.dataset.pipeline))
        annotations = _annotations_by_image(tiny_coco / f'{split}.json')
        for i in range(2):
            item = dataset[i]
            h, w = item['inputs'].shape[-2:]
            if 'vit' in name:
                assert (h, w) == (1024, 1024)
            elif split == 'train':
                assert 640 <= min(h, w) <= 800 and max(h, w) <= 1333
            sample = item['data_samples']
            _assert_instances_follow_the_pipeline(
                sample, annotations[sample.img_id],
                resized=split == 'train', may_crop='vit' in name and split == 'train')


def _annotations_by_image(ann_file):
    import json
    from collections import defaultdict

    by_image = defaultdict(list)
    for ann in json.loads(ann_file.read_text())['annotations']:
        by_image[ann['image_id']].append(ann)
    return by_image


def _assert_instances_follow_the_pipeline(sample, anns, resized: bool, may_crop: bool) -> None:
    """The packed instances are the image's annotations: resized with the image in training;
    at the original size in testing (the test pipelines load them after the resize, and the
    COCO metric compares in original coordinates).

    Only the ViT's training pipeline has a random crop (``allow_negative_crop=True``), which
    may drop instances; then every kept box still lies inside the resized image.
    """
    instances = sample.gt_instances
    boxes, labels = instances.bboxes.tensor, instances.labels
    assert len(instances.masks) == len(boxes) == len(labels)
    img_h, img_w = sample.img_shape if resized else sample.ori_shape
    assert (boxes[:, 0::2] >= 0).all() and (boxes[:, 0::2] <= img_w + 1e-3).all()
    assert (boxes[:, 1::2] >= 0).all() and (boxes[:, 1::2] <= img_h + 1e-3).all()
    if may_crop:
        assert len(boxes) <= len(anns)
        return
    assert len(anns) == 3 and len(boxes) == len(anns)
    assert sorted(labels.tolist()) == sorted(a['category_id'] - 1 for a in anns)
    # Box sizes (flip-invariant) are the annotated ones times the resize factor.
    sx, sy = sample.scale_factor if resized else (1., 1.)
    expected = sorted((a['bbox'][2] * sx, a['bbox'][3] * sy) for a in anns)
    got = sorted(zip((boxes[:, 2] - boxes[:, 0]).tolist(), (boxes[:, 3] - boxes[:, 1]).tolist()))
    torch.testing.assert_close(torch.tensor(got), torch.tensor(expected), rtol=0, atol=0.05)
