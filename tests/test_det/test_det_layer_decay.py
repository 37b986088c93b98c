"""BackboneLayerDecayOptimWrapperConstructor: per-layer LRs from the backbone's get_layer_depth."""
import pytest
import torch
from mmengine.optim import build_optim_wrapper
from mmengine.registry import init_default_scope
from mmdet.registry import MODELS

from det_helpers import tiny_det_cfg


def _groups(family, tmp_path, tiny_coco):
    cfg = tiny_det_cfg(family, None, tiny_coco, tmp_path)
    init_default_scope('mmdet')
    model = MODELS.build(cfg.model)
    wrapper = build_optim_wrapper(model, cfg.optim_wrapper)
    groups = {g['param_name']: g for g in wrapper.optimizer.param_groups}
    assert len(groups) == sum(p.requires_grad for p in model.parameters())
    return cfg, groups


def test_vit_layer_decay(tmp_path, tiny_coco):
    cfg, groups = _groups('vit', tmp_path, tiny_coco)
    base, rate = cfg.optim_wrapper.optimizer.lr, cfg.optim_wrapper.paramwise_cfg.layer_decay_rate
    assert (base, rate) == (3e-4, 0.75)
    blocks = 4  # the tiny ViT of the test

    def lr(name):
        return groups[name]['lr']

    assert lr('backbone.patch_embed.projection.weight') == pytest.approx(
        base * rate**(blocks + 1))
    assert lr('backbone.pos_embed') == lr('backbone.cls_token') == lr(
        'backbone.patch_embed.projection.weight')
    for i in range(blocks):
        assert lr(f'backbone.layers.{i}.attn.qkv.weight') == pytest.approx(
            base * rate**(blocks - i))
        assert lr(f'backbone.layers.{i}.attn.relative_position_bias_table') == pytest.approx(
            base * rate**(blocks - i))
    assert lr(f'backbone.layers.{blocks - 1}.ffn.layers.1.weight') == pytest.approx(base * rate)
    for name in ('neck.0.branches.0.0.weight', 'neck.1.lateral_convs.0.conv.weight',
                 'rpn_head.rpn_conv.weight', 'roi_head.bbox_head.fc_cls.weight',
                 'roi_head.mask_head.conv_logits.weight'):
        assert lr(name) == pytest.approx(base), name

    # no weight decay on norms, biases, position embeddings and rel-pos tables
    wd = cfg.optim_wrapper.optimizer.weight_decay
    for name in ('backbone.pos_embed', 'backbone.cls_token', 'backbone.layers.0.ln1.weight',
                 'backbone.layers.0.attn.relative_position_bias_table',
                 'backbone.layers.0.attn.qkv.bias' if 'backbone.layers.0.attn.qkv.bias' in
                 groups else 'backbone.layers.0.attn.q_bias',
                 'roi_head.bbox_head.fc_cls.bias'):
        assert groups[name]['weight_decay'] == 0., name
    for name in ('backbone.layers.0.attn.qkv.weight', 'roi_head.bbox_head.fc_cls.weight'):
        assert groups[name]['weight_decay'] == wd, name


def test_convnext_layer_decay(tmp_path, tiny_coco):
    cfg, groups = _groups('convnext', tmp_path, tiny_coco)
    base, rate = cfg.optim_wrapper.optimizer.lr, cfg.optim_wrapper.paramwise_cfg.layer_decay_rate
    # ConvNeXt-atto (depths 2-2-6-2) has 6 + 2 layer groups in MMPretrain's get_layer_depth
    assert groups['backbone.downsample_layers.0.0.weight']['lr'] == pytest.approx(base * rate**7)
    assert groups['backbone.stages.2.5.pointwise_conv1.weight']['lr'] == pytest.approx(
        base * rate**(7 - 4))
    assert groups['backbone.stages.3.1.pointwise_conv1.weight']['lr'] == pytest.approx(
        base * rate)
    assert groups['neck.fpn_convs.0.conv.weight']['lr'] == pytest.approx(base)


def test_backbone_without_layer_depth_is_an_error(tmp_path, tiny_coco):
    cfg = tiny_det_cfg('fpn', None, tiny_coco, tmp_path)  # MMDetection's own ResNet
    cfg.optim_wrapper = dict(
        type='OptimWrapper', constructor='BackboneLayerDecayOptimWrapperConstructor',
        optimizer=dict(type='AdamW', lr=1e-4), paramwise_cfg=dict(layer_decay_rate=0.8))
    init_default_scope('mmdet')
    model = MODELS.build(cfg.model)
    with pytest.raises(NotImplementedError, match='get_layer_depth'):
        build_optim_wrapper(model, cfg.optim_wrapper)


def test_constructor_sees_through_a_model_wrapper(tmp_path, tiny_coco):
    """The runner may hand the constructor a wrapped model (``.module``)."""
    cfg = tiny_det_cfg('convnext', None, tiny_coco, tmp_path)
    init_default_scope('mmdet')
    model = MODELS.build(cfg.model)

    class Wrapped(torch.nn.Module):
        def __init__(self, module):
            super().__init__()
            self.module = module

    wrapper = build_optim_wrapper(Wrapped(model), cfg.optim_wrapper)
    names = {g['param_name'] for g in wrapper.optimizer.param_groups}
    assert 'backbone.downsample_layers.0.0.weight' in names
