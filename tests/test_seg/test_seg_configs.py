"""The ``projects/seg`` configs parse and build on MMSegmentation 1.x, with the settings of the
A2MIM transfer protocol, and their optimizers give the intended lr per layer."""
import re

import pytest
import torch
from mmengine.config import Config
from mmengine.optim import build_optim_wrapper
from mmengine.registry import init_default_scope
from mmseg.engine.optimizers.layer_decay_optimizer_constructor import (
    get_layer_id_for_vit, get_stage_id_for_convnext)
from mmseg.registry import MODELS

from seg_helpers import CONFIGS, SEG_CONFIGS

# config -> (backbone type, stage channels seen by the heads, aux head input)
EXPECTED = {
    'vit': ('mmpretrain.BEiTViT', [768] * 4, 768),
    'resnet': ('mmpretrain.ResNet', [256, 512, 1024, 2048], 1024),
    'convnext': ('mmpretrain.ConvNeXt', [96, 192, 384, 768], 384),
    'convnext-base': ('mmpretrain.ConvNeXt', [128, 256, 512, 1024], 512),
}


def _load(name: str) -> Config:
    cfg = Config.fromfile(str(SEG_CONFIGS / CONFIGS[name]))
    init_default_scope('mmseg')
    return cfg


def _build(cfg: Config):
    """Build the ViT-B segmentor without allocating weights; ResNet and ConvNeXt call
    ``Tensor.item()`` in their drop-path schedules, which meta tensors refuse."""
    if 'BEiTViT' not in cfg.model.backbone.type:
        return MODELS.build(cfg.model)
    with torch.device('meta'):
        return MODELS.build(cfg.model)


def _groups_by_param(optim_wrapper, model):
    names = {id(p): n for n, p in model.named_parameters()}
    return {names[id(p)]: group for group in optim_wrapper.optimizer.param_groups
            for p in group['params']}


def test_every_config_is_covered():
    assert sorted(p.name for p in SEG_CONFIGS.glob('*.py')) == sorted(CONFIGS.values())


@pytest.mark.parametrize('name', sorted(CONFIGS))
def test_config_parses_and_builds(name):
    cfg = _load(name)
    backbone_type, in_channels, aux_in = EXPECTED[name]
    # a2mim_plugin registers the layer-decay constructor and repairs the rel-pos resize
    assert cfg.custom_imports['imports'] == ['a2mim_plugin', 'mmpretrain.models']
    assert cfg.default_scope == 'mmseg'
    backbone = cfg.model.backbone
    assert backbone.type == backbone_type
    init = backbone.init_cfg
    assert (init.type, init.prefix, init.strict) == ('Pretrained', 'backbone.', True)
    assert init.checkpoint == cfg.pretrained == ''
    assert cfg.model.pretrained is None
    assert cfg.default_hooks.checkpoint.type == 'mmpretrain.AtomicCheckpointHook'
    assert cfg.model.decode_head.num_classes == cfg.model.auxiliary_head.num_classes == 150
    assert list(cfg.model.decode_head.in_channels) == in_channels
    assert cfg.model.auxiliary_head.in_channels == aux_in
    assert cfg.train_dataloader.batch_size == 2  # x 8 GPUs
    assert cfg.train_dataloader.dataset.type == 'ADE20KDataset'
    assert cfg.train_cfg.max_iters == 160000
    assert tuple(cfg.crop_size) == (512, 512)
    assert tuple(cfg.model.data_preprocessor.size) == (512, 512)
    assert cfg.val_evaluator.type == 'IoUMetric'

    model = _build(cfg)
    assert type(model).__name__ == 'EncoderDecoder'
    assert type(model.backbone).__name__ == backbone_type.split('.')[1]
    if name == 'resnet':  # A2MIM's plain pytorch-style ResNet: 7x7 stem, not ResNetV1c
        assert model.backbone.conv1.kernel_size == (7, 7) and not model.backbone.deep_stem
        assert type(model.backbone.norm1).__name__ == 'SyncBatchNorm'
    if name == 'vit':
        assert model.backbone.pos_embed.shape == (1, 1 + 32 * 32, 768)
        assert list(model.backbone.out_indices) == [3, 5, 7, 11]
        assert model.backbone.out_type == 'featmap'
        assert not model.backbone.final_norm
        assert cfg.model.test_cfg == dict(mode='slide', crop_size=(512, 512), stride=(341, 341))
        assert list(cfg.model.neck.rescales) == [4, 2, 1, 0.5]
        assert cfg.model.decode_head.channels == 768
    if name.startswith('convnext'):
        assert list(model.backbone.out_indices) == [0, 1, 2, 3]
        assert not model.backbone.gap_before_final_norm


def test_vit_layer_decay_matches_beit_rule():
    """AdamW 4e-4, decay 0.65 over 12 blocks; ids equal MMSegmentation's BEiT rule."""
    cfg = _load('vit')
    model = _build(cfg)
    optim_wrapper = build_optim_wrapper(model, cfg.optim_wrapper)
    groups = _groups_by_param(optim_wrapper, model)
    assert len(groups) == len([p for p in model.parameters() if p.requires_grad])
    for name, param in model.named_parameters():
        depth = get_layer_id_for_vit(name, 12 + 2)  # MMSegmentation's rule for BEiT / MAE
        expected = 4e-4 * 0.65**(12 + 1 - depth)
        assert groups[name]['lr'] == pytest.approx(expected, rel=1e-9), name
        no_decay = param.ndim == 1 or name.endswith('.bias')
        assert groups[name]['weight_decay'] == (0. if no_decay else 0.05), name
    lr = {n: g['lr'] for n, g in groups.items()}
    assert lr['backbone.patch_embed.projection.weight'] == pytest.approx(4e-4 * 0.65**13)
    assert lr['backbone.pos_embed'] == pytest.approx(4e-4 * 0.65**13)
    assert lr['backbone.layers.0.attn.qkv.weight'] == pytest.approx(4e-4 * 0.65**12)
    assert lr['backbone.layers.11.ffn.layers.1.weight'] == pytest.approx(4e-4 * 0.65)
    assert lr['decode_head.conv_seg.weight'] == lr['neck.upsample_4x.0.weight'] == 4e-4


def test_layer_decay_constructor_for_resnet():
    """The constructor also serves backbones MMSegmentation's rules reject (ResNet)."""
    cfg = _load('resnet')
    model = _build(cfg)
    optim_wrapper = build_optim_wrapper(model, dict(
        type='OptimWrapper', optimizer=dict(type='AdamW', lr=1e-3, weight_decay=0.05),
        constructor='BackboneLayerDecayOptimWrapperConstructor',
        paramwise_cfg=dict(layer_decay_rate=0.5, flat_decay_mult=0., bias_decay_mult=0.,
                           custom_keys={'decode_head.conv_seg': dict(decay_mult=0.)})))
    groups = _groups_by_param(optim_wrapper, model)
    # R-50 (3, 4, 6, 3 blocks): stem 0, layer1 1, layer2 2-3, layer3 4-5, layer4 6, rest 7.
    expected_depth = {
        'backbone.conv1.weight': 0, 'backbone.layer1.2.conv3.weight': 1,
        'backbone.layer2.1.conv1.weight': 2, 'backbone.layer2.2.conv1.weight': 3,
        'backbone.layer3.2.conv2.weight': 4, 'backbone.layer3.3.conv2.weight': 5,
        'backbone.layer4.0.downsample.0.weight': 6, 'decode_head.fpn_bottleneck.conv.weight': 7,
        'auxiliary_head.conv_seg.weight': 7}
    for name, depth in expected_depth.items():
        assert groups[name]['lr'] == pytest.approx(1e-3 * 0.5**(7 - depth)), name
        assert groups[name]['weight_decay'] == 0.05, name
    assert groups['backbone.bn1.weight']['weight_decay'] == 0.
    assert groups['decode_head.conv_seg.weight']['weight_decay'] == 0.  # custom_keys
    assert groups['decode_head.conv_seg.bias']['weight_decay'] == 0.
    assert groups['backbone.layer1.0.bn1.bias']['weight_decay'] == 0.

    with pytest.raises(ValueError, match='layer_decay_rate'):
        build_optim_wrapper(model, dict(
            type='OptimWrapper', optimizer=dict(type='AdamW', lr=1e-3),
            constructor='BackboneLayerDecayOptimWrapperConstructor', paramwise_cfg=dict(x=1)))


def test_layer_decay_constructor_rejects_backbones_without_depth():
    cfg = _load('resnet')
    cfg.model.backbone = dict(type='ResNetV1c', depth=18)  # MMSegmentation's own ResNet
    model = _build(cfg)
    with pytest.raises(NotImplementedError, match='get_layer_depth'):
        build_optim_wrapper(model, dict(
            type='OptimWrapper', optimizer=dict(type='AdamW', lr=1e-3),
            constructor='BackboneLayerDecayOptimWrapperConstructor',
            paramwise_cfg=dict(layer_decay_rate=0.5)))


def test_convnext_stage_wise_decay_sees_mmpretrain_names():
    """MMSegmentation's ConvNeXt rule (stage-wise 0.9) applies to mmpretrain.ConvNeXt keys."""
    cfg = _load('convnext')
    cfg.optim_wrapper.type = 'OptimWrapper'  # AmpOptimWrapper needs a GPU
    cfg.optim_wrapper.pop('loss_scale')
    model = _build(cfg)
    groups = _groups_by_param(build_optim_wrapper(model, cfg.optim_wrapper), model)
    seen_stages = set()
    for name in groups:
        match = re.match(r'backbone\.(stages|downsample_layers)\.(\d)\.', name)
        if match is None:
            assert groups[name]['lr'] == pytest.approx(1e-4), name  # heads, stage norms
            continue
        stage_id = get_stage_id_for_convnext(name, 14)
        assert stage_id == (0 if match[1] == 'downsample_layers' else int(match[2]) + 1)
        assert groups[name]['lr'] == pytest.approx(1e-4 * 0.9**(14 - stage_id - 1)), name
        seen_stages.add(stage_id)
    assert seen_stages == {0, 1, 2, 3, 4}
