"""``torch.compile`` of the A2MIM training loss path, one tiny model per family.

The mmengine runner compiles ``model.train_step`` when the config sets ``compile=True`` (or a
dict of ``torch.compile`` options). These tests count graph breaks with ``torch._dynamo.explain``
on ``A2MIM.loss`` (mask stacking, RGB-mean fill, mask upsampling, injection hook, decoder, head,
focal-L1 and Fourier losses) and require none in the plugin's own code. They use the 'eager' /
'aot_eager' backends: they check what dynamo traces, not inductor's kernels (too slow on CPU).

Known breaks of stock code (outside the plugin): MMPretrain's ``VisionTransformer`` and
``BEiTViT`` hand numpy drop-path rates (``np.linspace``) to mmcv's ``DropPath``, whose
``if drop_prob == 0.`` on a numpy scalar breaks the graph once per block
(``mmcv/cnn/bricks/drop.py``). ResNet, ConvNeXt and Swin trace as one graph.
"""
from pathlib import Path
from typing import Dict, List, Tuple

import pytest
import torch
import torch._dynamo as dynamo
from mmengine.hooks import Hook
from mmpretrain.registry import MODELS
from mmpretrain.structures import DataSample

import a2mim_plugin

PLUGIN_DIR = str(Path(a2mim_plugin.__file__).resolve().parent)
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
#            stride, mask cell in px, head, stock files allowed to break the graph)
FAMILIES: Dict[str, tuple] = {
    'A2MIMResNet': (dict(type='A2MIMResNet', depth=18, mask_layer=3, mask_init=1e-6), None,
                    512, 32, 16, CNN_HEAD, ()),
    'A2MIMConvNeXt': (dict(type='A2MIMConvNeXt', arch='atto', mask_layer=3, mask_init=1e-6),
                      None, 320, 32, 32, CNN_HEAD, ()),
    'A2MIMViT': (dict(type='A2MIMViT', arch=VIT_ARCH, img_size=IMG, patch_size=16,
                      drop_path_rate=0.1), None, 64, 16, 16, VIT_HEAD,
                 ('mmcv/cnn/bricks/drop.py', )),
    'A2MIMPlainViT': (dict(type='A2MIMPlainViT', arch=VIT_ARCH, img_size=IMG, patch_size=16,
                           mask_layer=1, replace=True), None, 64, 16, 16, NONFOCAL_HEAD,
                      ('mmcv/cnn/bricks/drop.py', )),
    'SwinTransformer': (dict(type='SwinTransformer', img_size=IMG, out_indices=(3, ),
                             arch=dict(embed_dims=32, depths=[1, 1, 2, 1],
                                       num_heads=[1, 2, 2, 4]),
                             drop_path_rate=0.1,
                             stage_cfgs=dict(block_cfgs=dict(window_size=2))),
                        dict(at='patch_embed', on='output'), 256, 32, 4, VIT_HEAD, ()),
}


def build(family: str) -> Tuple[torch.nn.Module, int]:
    """The tiny A2MIM model of ``family`` in train mode, and its mask cell size."""
    backbone, mask_token, channels, stride, cell, head, _ = FAMILIES[family]
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


@pytest.mark.parametrize('family', list(FAMILIES))
def test_loss_path_has_no_graph_break_in_plugin_code(family):
    model, cell = build(family)
    inputs, samples = batch(cell, seed=0)
    explanation = dynamo.explain(total_loss(model))(inputs, samples)
    sites = break_sites(explanation)
    in_plugin = [s for s in sites if s.startswith(PLUGIN_DIR)]
    assert not in_plugin, f'{family}: graph breaks in plugin code: {in_plugin}'
    allowed = FAMILIES[family][-1]
    stock = [s for s in sites if not any(a in s for a in allowed)]
    assert not stock, f'{family}: unexpected graph breaks in stock code: {stock}'
    if not allowed:  # ResNet, ConvNeXt, Swin: the whole loss path is one graph
        assert explanation.graph_count == 1 and explanation.graph_break_count == 0


@pytest.mark.parametrize('family', ['A2MIMResNet', 'SwinTransformer'])
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


@pytest.mark.parametrize('paramwise', [False, True], ids=['plain_groups', 'paramwise_cfg'])
def test_runner_compile_switch_trains_like_eager(paramwise, tmp_path, photo_dataset):
    """``compile=dict(backend=...)`` in a config (``--cfg-options compile=True`` on a GPU)
    goes through mmengine's runner and trains to the eager run's losses; with a
    ``paramwise_cfg`` (every shipped config has one) through ``PlainParamGroupsHook``, which the
    pre-training runtime base turns on."""
    from mmengine.config import Config
    from mmengine.runner import Runner

    from helpers import write_tiny_config

    losses = {}
    for mode in ('eager', 'compiled'):
        cfg = Config.fromfile(write_tiny_config(tmp_path / f'{mode}.py', photo_dataset))
        cfg.work_dir = str(tmp_path / mode)
        cfg.train_cfg = dict(type='IterBasedTrainLoop', max_iters=3)
        cfg.default_hooks.checkpoint = dict(type='CheckpointHook', interval=100, by_epoch=False)
        if paramwise:
            cfg.optim_wrapper.paramwise_cfg = dict(norm_decay_mult=0., bias_decay_mult=0.,
                                                   custom_keys={'mask_token': dict(lr_mult=2.)})
            cfg.custom_hooks = [dict(type='PlainParamGroupsHook')]
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
        losses[mode] = torch.tensor(seen)
    assert losses['eager'].shape == (3, ) and torch.isfinite(losses['eager']).all()
    torch.testing.assert_close(losses['compiled'], losses['eager'], rtol=1e-4, atol=1e-6)


class _LossRecorder(Hook):
    """Records the total loss of every training iteration."""

    def __init__(self, sink: list) -> None:
        self.sink = sink

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None) -> None:
        self.sink.append(float(outputs['loss']))
