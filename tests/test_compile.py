"""``torch.compile`` of the training loss path, one tiny model per family: one graph each.

The mmengine runner compiles ``model.train_step`` when the config sets ``compile=True`` (or a
dict of ``torch.compile`` options). These tests count graphs with ``torch._dynamo.explain`` on
``A2MIM.loss`` (mask stacking, RGB-mean fill, mask upsampling, injection hook, decoder, head,
focal-L1 and Fourier losses) and on the fine-tuning classifiers' ``loss`` (backbone, pooling,
head, label-smoothing loss on Mixup/CutMix targets), and require exactly one graph. They use the
'eager' / 'aot_eager' backends: they check what dynamo traces, not inductor's kernels.

Before ``python_scalar_attributes`` (``models/utils/compile_ready.py``), MMPretrain's
``VisionTransformer`` and ``BEiTViT`` handed NumPy drop-path rates (``np.linspace``) to mmcv's
``DropPath``, whose ``if drop_prob == 0.`` on a NumPy scalar broke the graph in every block:
14 graphs for the tiny A2MIMPlainViT, 15 for A2MIMViT, 11 for the BEiT classifier. A2MIM
converts them when it is built; ``CompileReadyHook`` does it for the stock fine-tuning,
detection and segmentation models before mmengine compiles.
"""
from pathlib import Path
from types import SimpleNamespace
from typing import Dict, List, Tuple

import numpy as np
import pytest
import torch
import torch._dynamo as dynamo
from mmcv.cnn.bricks.drop import DropPath
from mmengine.hooks import Hook
from mmpretrain.registry import MODELS
from mmpretrain.structures import DataSample

from a2mim_plugin.engine.hooks import CompileReadyHook
from a2mim_plugin.models.utils.compile_ready import python_scalar_attributes

IMG = 64
VIT_ARCH = dict(embed_dims=64, num_layers=2, num_heads=2, feedforward_channels=128)
CNN_HEAD = dict(type='A2MIMHead', loss=dict(type='FocalL1Loss', alpha=0.2, gamma=1.0),
                fft_weight=0.5, fft_focal=True, fft_unmask_replace='mixed',
                fft_unmask_weight=1e-3)
VIT_HEAD = dict(type='A2MIMHead', loss=dict(type='ElementwiseL1Loss'), fft_weight=0.1,
                fft_focal=True, fft_unmask_replace='mixed')
NONFOCAL_HEAD = dict(type='A2MIMHead', loss=dict(type='ElementwiseL1Loss'), fft_weight=0.5,
                     fft_focal=False, fft_unmask_replace='target')

# family -> (backbone, mask_token (generic mechanism) or None, decoder channels, decoder
#            stride, mask cell in px, head)
FAMILIES: Dict[str, tuple] = {
    'A2MIMResNet': (dict(type='A2MIMResNet', depth=18, mask_layer=3, mask_init=1e-6), None,
                    512, 32, 16, CNN_HEAD),
    'A2MIMConvNeXt': (dict(type='A2MIMConvNeXt', arch='atto', mask_layer=3, mask_init=1e-6),
                      None, 320, 32, 32, CNN_HEAD),
    'A2MIMViT': (dict(type='A2MIMViT', arch=VIT_ARCH, img_size=IMG, patch_size=16,
                      drop_path_rate=0.1), None, 64, 16, 16, VIT_HEAD),
    'A2MIMPlainViT': (dict(type='A2MIMPlainViT', arch=VIT_ARCH, img_size=IMG, patch_size=16,
                           mask_layer=1, replace=True), None, 64, 16, 16, NONFOCAL_HEAD),
    'SwinTransformer': (dict(type='SwinTransformer', img_size=IMG, out_indices=(3, ),
                             arch=dict(embed_dims=32, depths=[1, 1, 2, 1],
                                       num_heads=[1, 2, 2, 4]),
                             drop_path_rate=0.1,
                             stage_cfgs=dict(block_cfgs=dict(window_size=2))),
                        dict(at='patch_embed', on='output'), 256, 32, 4, VIT_HEAD),
    # a generic stock backbone with numpy drop-path rates: A2MIM converts them when built
    'VisionTransformer': (dict(type='VisionTransformer', arch=VIT_ARCH, img_size=IMG,
                               patch_size=16, drop_path_rate=0.1, out_type='featmap'),
                          dict(at='patch_embed', on='output'), 64, 16, 16, VIT_HEAD),
}
# fine-tuning base config -> its model shrunk (backbone, head channels, 10 classes)
FINETUNE = {
    'vit-p16_beit-protocol': dict(backbone=dict(arch=VIT_ARCH, img_size=IMG),
                                  head=dict(in_channels=64)),
    'resnet_rsb-a2': dict(backbone=dict(depth=18), head=dict(in_channels=512)),
    'resnet_rsb-a3': dict(backbone=dict(depth=18), head=dict(in_channels=512)),
    'convnext_spark-protocol': dict(backbone=dict(arch='atto', drop_path_rate=0.1),
                                    head=dict(in_channels=320)),
}
REPO_ROOT = Path(__file__).resolve().parents[1]
FINETUNE_DIR = REPO_ROOT / 'configs' / '_base_' / 'finetune'


def build(family: str) -> Tuple[torch.nn.Module, int]:
    """The tiny A2MIM model of ``family`` in train mode, and its mask cell size."""
    backbone, mask_token, channels, stride, cell, head = FAMILIES[family]
    cfg = dict(type='A2MIM', backbone=backbone, input_fill='mean', head=head,
               neck=dict(type='A2MIMLinearDecoder', in_channels=channels,
                         encoder_stride=stride))
    if mask_token is not None:
        cfg['mask_token'] = mask_token
    torch.manual_seed(0)
    model = MODELS.build(cfg)
    model.init_weights()
    return model.train(), cell


def batch(cell: int, seed: int) -> Tuple[torch.Tensor, List[DataSample]]:
    """Two random images and data samples with about half of the cells masked."""
    gen = torch.Generator().manual_seed(seed)
    grid = IMG // cell
    inputs = torch.randn(2, 3, IMG, IMG, generator=gen)
    masks = (torch.rand(2, grid, grid, generator=gen) < 0.5).long()
    masks[:, 0, 0], masks[:, -1, -1] = 1, 0
    return inputs, [DataSample().set_mask(m) for m in masks]


def total_loss(model: torch.nn.Module):
    def fn(inputs: torch.Tensor, samples: List[DataSample]) -> torch.Tensor:
        return sum(model.loss(inputs, samples).values())
    return fn


def break_sites(explanation) -> List[str]:
    """'file:line' of the innermost user frame of every graph break."""
    sites = []
    for reason in explanation.break_reasons:
        frame = reason.user_stack[-1]
        sites.append(f'{frame.filename}:{frame.lineno}')
    return sites


@pytest.fixture(autouse=True)
def fresh_dynamo():
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    dynamo.reset()
    dynamo.utils.counters.clear()
    yield
    dynamo.reset()
    torch.set_num_threads(previous)


def merged(base: dict, override: dict) -> dict:
    """``base`` with ``override`` merged in (dicts into dicts; anything else replaced)."""
    out = dict(base)
    for key, value in override.items():
        out[key] = merged(out[key], value) if isinstance(value, dict) and isinstance(
            out.get(key), dict) else value
    return out


def build_classifier(name: str) -> Tuple[torch.nn.Module, object]:
    """The shrunk model of fine-tuning config ``name`` (its data preprocessor and Mixup/CutMix
    included) in train mode, and the config."""
    from mmengine.config import Config
    cfg = Config.fromfile(str(FINETUNE_DIR / f'{name}.py'))
    model_cfg = merged(cfg.model.to_dict(), FINETUNE[name])
    model_cfg['head']['num_classes'] = 10
    model_cfg['data_preprocessor'] = dict(cfg.data_preprocessor.to_dict(), num_classes=10)
    torch.manual_seed(0)
    return MODELS.build(model_cfg).train(), cfg


def classifier_batch(model: torch.nn.Module, seed: int) -> Tuple[torch.Tensor, list]:
    """Two images through the model's data preprocessor (normalisation, Mixup / CutMix)."""
    gen = torch.Generator().manual_seed(seed)
    images = torch.randint(0, 256, (2, 3, IMG, IMG), generator=gen, dtype=torch.uint8)
    samples = [DataSample().set_gt_label(label) for label in (1, 7)]
    torch.manual_seed(seed)
    data = model.data_preprocessor(dict(inputs=images, data_samples=samples), True)
    return data['inputs'], data['data_samples']


def compile_ready(model: torch.nn.Module) -> None:
    """What the runner does: CompileReadyHook (in every shipped config) before compiling."""
    runner = SimpleNamespace(model=model, optim_wrapper=None)
    CompileReadyHook().before_run(runner)


def drop_probs(model: torch.nn.Module) -> list:
    return [m.drop_prob for m in model.modules() if isinstance(m, DropPath)]


@pytest.mark.parametrize('family', list(FAMILIES))
def test_pretraining_loss_is_one_graph(family):
    model, cell = build(family)
    inputs, samples = batch(cell, seed=0)
    explanation = dynamo.explain(total_loss(model))(inputs, samples)
    assert break_sites(explanation) == []
    assert explanation.graph_count == 1 and explanation.graph_break_count == 0
    assert all(type(p) is float for p in drop_probs(model))


@pytest.mark.parametrize('name', list(FINETUNE))
def test_finetuning_loss_is_one_graph_after_compile_ready_hook(name):
    """The stock classifier of every fine-tuning base config (with its Mixup / CutMix soft
    targets and label-smoothing loss) traces as one graph once CompileReadyHook has run."""
    model, cfg = build_classifier(name)
    assert cfg.default_hooks.compile_ready.type == 'CompileReadyHook'
    probs = drop_probs(model)
    compile_ready(model)
    assert drop_probs(model) == probs  # same values (0.1 * i / (L - 1)), as Python floats
    assert all(type(p) is float for p in drop_probs(model))
    inputs, samples = classifier_batch(model, seed=0)
    assert samples[0].gt_score.shape == (10, )  # soft targets of the batch augments
    explanation = dynamo.explain(lambda x, s: sum(model.loss(x, s).values()))(inputs, samples)
    assert break_sites(explanation) == []
    assert explanation.graph_count == 1 and explanation.graph_break_count == 0


@pytest.mark.parametrize('config,scope', [
    ('projects/det/configs/mask-rcnn_vit-base-p16_a2mim_sfp-giou-4conv1f_1x_coco.py', 'mmdet'),
    ('projects/seg/configs/upernet_a2mim-vit-base-p16_8xb2-160k_ade20k-512x512.py', 'mmseg')],
    ids=['det', 'seg'])
def test_vit_transfer_configs_make_their_backbone_compile_ready(config, scope):
    """The ViT-B detection and segmentation configs run CompileReadyHook (resolved from their
    own scope), which makes their BEiTViT's drop-path rates Python floats."""
    from mmengine.config import Config
    from mmengine.registry import HOOKS, DefaultScope
    cfg = Config.fromfile(str(REPO_ROOT / config))
    with DefaultScope.overwrite_default_scope(scope):
        hook = HOOKS.build(cfg.default_hooks.compile_ready)
    assert type(hook) is CompileReadyHook
    backbone = cfg.model.backbone.to_dict()
    backbone.update(type='BEiTViT', arch=VIT_ARCH, img_size=IMG, out_indices=(0, 1),
                    init_cfg=None)
    model = MODELS.build(backbone)
    assert backbone['drop_path_rate'] > 0 and {type(p) for p in drop_probs(model)} == {np.float64}
    hook.before_run(SimpleNamespace(model=model, optim_wrapper=None))
    assert {type(p) for p in drop_probs(model)} == {float}


def test_stock_vit_classifier_breaks_without_the_hook():
    """Why the hook is there: BEiTViT as built by MMPretrain breaks once per DropPath."""
    model, _ = build_classifier('vit-p16_beit-protocol')
    assert any(isinstance(p, np.floating) for p in drop_probs(model))
    inputs, samples = classifier_batch(model, seed=0)
    explanation = dynamo.explain(lambda x, s: sum(model.loss(x, s).values()))(inputs, samples)
    assert explanation.graph_count > 1
    assert {site.split(':')[0].endswith('mmcv/cnn/bricks/drop.py')
            for site in break_sites(explanation)} == {True}


def test_python_scalar_attributes_keeps_values_and_keys():
    from mmpretrain.models.backbones import VisionTransformer
    torch.manual_seed(0)
    vit = VisionTransformer(arch=VIT_ARCH, img_size=IMG, patch_size=16, drop_path_rate=0.2)
    keys = list(vit.state_dict())
    before = drop_probs(vit)
    assert [type(p) for p in before] == [np.float64] * 2 * VIT_ARCH['num_layers']
    converted = python_scalar_attributes(vit)
    assert converted == [f'layers.{i}.{part}.drop_prob'
                         for i in range(VIT_ARCH['num_layers'])
                         for part in ('attn.out_drop', 'ffn.dropout_layer')]
    assert drop_probs(vit) == [0., 0., 0.2, 0.2] and list(vit.state_dict()) == keys
    assert all(type(p) is float for p in drop_probs(vit))
    assert python_scalar_attributes(vit) == []  # nothing left to convert


@pytest.mark.parametrize('family', ['A2MIMResNet', 'SwinTransformer', 'A2MIMViT'])
def test_fullgraph_compile_matches_eager(family):
    """``fullgraph=True`` compiles (no break at all) and gives eager's loss and gradients, also
    on a second batch with another mask (no recompilation needed for a new mask)."""
    model, cell = build(family)
    compiled = torch.compile(total_loss(model), backend='aot_eager', fullgraph=True)
    for seed in (0, 1):
        inputs, samples = batch(cell, seed)
        model.zero_grad()
        torch.manual_seed(seed)  # the same drop-path draws in both runs
        eager = total_loss(model)(inputs, samples)
        eager.backward()
        grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
        model.zero_grad()
        torch.manual_seed(seed)
        loss = compiled(inputs, samples)
        loss.backward()
        assert torch.isfinite(loss) and loss.item() > 0
        torch.testing.assert_close(loss, eager, rtol=1e-5, atol=1e-6)
        assert 'backbone.mask_token' in grads
        for name, grad in grads.items():
            got = model.get_parameter(name).grad
            assert got is not None and torch.isfinite(got).all(), name
            torch.testing.assert_close(got, grad, rtol=1e-4, atol=1e-6, msg=name)
    assert dynamo.utils.counters['stats']['unique_graphs'] == 1


@pytest.mark.parametrize('backbone,paramwise', [('resnet', False), ('resnet', True),
                                                 ('vit', True)],
                         ids=['resnet_plain_groups', 'resnet_paramwise_cfg', 'vit_paramwise_cfg'])
def test_runner_compile_switch_trains_like_eager(backbone, paramwise, tmp_path, photo_dataset):
    """``compile=dict(backend=...)`` in a config (``--cfg-options compile=True`` on a GPU)
    goes through mmengine's runner and trains to the eager run's losses, for the ResNet and the
    BEiT-style ViT preset (drop path 0.1, one graph for its loss); with a ``paramwise_cfg``
    (every shipped config has one) through ``CompileReadyHook``, which every shipped config
    turns on."""
    from mmengine.config import Config
    from mmengine.runner import Runner

    from helpers import write_tiny_config

    losses = {}
    for mode in ('eager', 'compiled'):
        cfg = Config.fromfile(write_tiny_config(tmp_path / f'{mode}.py', photo_dataset))
        cfg.work_dir = str(tmp_path / mode)
        cfg.train_cfg = dict(type='IterBasedTrainLoop', max_iters=3)
        cfg.default_hooks.checkpoint = dict(type='CheckpointHook', interval=100, by_epoch=False)
        if backbone == 'vit':
            cfg.model.backbone = FAMILIES['A2MIMViT'][0]
            cfg.model.neck = dict(type='A2MIMLinearDecoder', in_channels=64, encoder_stride=16)
            cfg.model.head = VIT_HEAD
        if paramwise:
            cfg.optim_wrapper.paramwise_cfg = dict(norm_decay_mult=0., bias_decay_mult=0.,
                                                   custom_keys={'mask_token': dict(lr_mult=2.)})
            cfg.default_hooks.compile_ready = dict(type='CompileReadyHook')
        if mode == 'compiled':
            cfg.compile = dict(backend='aot_eager')
        runner = Runner.from_cfg(cfg)
        seen = []
        runner.register_hook(_LossRecorder(seen), priority='LOWEST')
        runner.train()
        if mode == 'compiled':
            assert hasattr(runner.model.train_step, '_torchdynamo_orig_callable')
        if paramwise:
            groups = runner.optim_wrapper.optimizer.param_groups
            assert all(type(g) is dict for g in groups)
            assert {g['weight_decay'] for g in groups} == {0., 0.05}
            token = runner.model.backbone.mask_token
            token_lr = [g['initial_lr'] for g in groups if any(p is token for p in g['params'])]
            other_lr = {g['initial_lr'] for g in groups if all(p is not token for p in g['params'])}
            assert token_lr == [2e-3] and other_lr == {1e-3}  # lr_mult survives the conversion
        if backbone == 'vit':
            probs = drop_probs(runner.model)
            assert probs[-1] == 0.1 and all(type(p) is float for p in probs)
        losses[mode] = torch.tensor(seen)
    assert losses['eager'].shape == (3, ) and torch.isfinite(losses['eager']).all()
    torch.testing.assert_close(losses['compiled'], losses['eager'], rtol=1e-4, atol=1e-6)


class _LossRecorder(Hook):
    """Records the total loss of every training iteration."""

    def __init__(self, sink: list) -> None:
        self.sink = sink

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None) -> None:
        self.sink.append(float(outputs['loss']))
