"""The optional fast paths (``models/utils/fast_paths.py``, ``FastPathsHook``) and fused AdamW:
same parameters and keys, fp32 numerics of the default path, off unless a config asks."""
import copy
from types import SimpleNamespace
from typing import Dict, Tuple

import pytest
import torch
from mmengine.optim import build_optim_wrapper
from mmpretrain.models.backbones import SwinTransformer
from mmpretrain.models.utils.attention import BEiTAttention, WindowMSA
from mmpretrain.registry import MODELS
from mmpretrain.structures import DataSample

from a2mim_plugin.engine.hooks import FastPathsHook
from a2mim_plugin.models.utils.fast_paths import use_channels_last, use_sdpa_attention

IMG = 64
VIT_ARCH = dict(embed_dims=64, num_layers=2, num_heads=2, feedforward_channels=128)
VIT_HEAD = dict(type='A2MIMHead', loss=dict(type='ElementwiseL1Loss'), fft_weight=0.1,
                fft_focal=True, fft_unmask_replace='mixed')
CNN_HEAD = dict(type='A2MIMHead', loss=dict(type='FocalL1Loss', alpha=0.2, gamma=1.0),
                fft_weight=0.5, fft_focal=True, fft_unmask_replace='mixed')
MODELS_CFG = {
    # BEiT-style ViT: per-layer relative position bias (the official A2MIM ViT)
    'beit': (dict(type='A2MIMViT', arch=VIT_ARCH, img_size=IMG, patch_size=16), None, 64, 16,
             VIT_HEAD),
    # BEiT-style ViT with the backbone's shared relative position bias
    'beit_shared': (dict(type='A2MIMViT', arch=VIT_ARCH, img_size=IMG, patch_size=16,
                         use_rel_pos_bias=False, use_shared_rel_pos_bias=True), None, 64, 16,
                    VIT_HEAD),
    # Swin with shifted windows (two blocks per stage: the second gets the shift mask)
    'swin': (dict(type='SwinTransformer', img_size=IMG, out_indices=(3, ),
                  arch=dict(embed_dims=32, depths=[2, 2, 2, 2], num_heads=[1, 2, 2, 4]),
                  drop_path_rate=0., stage_cfgs=dict(block_cfgs=dict(window_size=2))),
             dict(at='patch_embed', on='output'), 256, 32, VIT_HEAD),
    'resnet': (dict(type='A2MIMResNet', depth=18, mask_layer=3, mask_init=1e-6), None, 512, 32,
               CNN_HEAD),
}


def build(name: str) -> torch.nn.Module:
    backbone, mask_token, channels, stride, head = MODELS_CFG[name]
    cfg = dict(type='A2MIM', backbone=backbone, head=head,
               neck=dict(type='A2MIMLinearDecoder', in_channels=channels, encoder_stride=stride))
    if mask_token is not None:
        cfg['mask_token'] = mask_token
    torch.manual_seed(0)
    model = MODELS.build(cfg)
    model.init_weights()
    for module in model.modules():  # biases far from their zero / tiny init
        table = getattr(module, 'relative_position_bias_table', None)
        if isinstance(table, torch.nn.Parameter):
            torch.nn.init.normal_(table, std=0.5)
    return model.train()


def loss_and_grads(model: torch.nn.Module) -> Tuple[torch.Tensor, Dict[str, torch.Tensor]]:
    """The A2MIM loss of a fixed batch (about half the cells masked) and its gradients."""
    gen = torch.Generator().manual_seed(0)
    inputs = torch.randn(2, 3, IMG, IMG, generator=gen)
    grid = 16 if isinstance(model.backbone, SwinTransformer) else 4  # token at stride 4 / 16
    masks = (torch.rand(2, grid, grid, generator=gen) < 0.5).long()
    masks[:, 0, 0] = 1
    samples = [DataSample().set_mask(m) for m in masks]
    model.zero_grad()
    torch.manual_seed(0)
    loss = sum(model.loss(inputs, samples).values())
    loss.backward()
    return loss.detach(), {n: p.grad.clone() for n, p in model.named_parameters()
                           if p.grad is not None}


def assert_same_numerics(fast: torch.nn.Module, plain: torch.nn.Module, rel: float) -> None:
    """Loss and every parameter's gradient within ``rel`` (relative, per tensor)."""
    loss0, grads0 = loss_and_grads(plain)
    loss1, grads1 = loss_and_grads(fast)
    assert torch.isfinite(loss0) and loss0 > 0
    assert abs(loss1 - loss0) <= rel * loss0
    assert set(grads1) == set(grads0) and 'backbone.mask_token' in grads0
    for name, grad in grads0.items():
        assert (grads1[name] - grad).norm() <= rel * grad.norm() + 1e-12, name


@pytest.mark.parametrize('name,modules', [('beit', 2), ('beit_shared', 2), ('swin', 8)])
def test_sdpa_attention_matches_manual_attention(name, modules):
    plain = build(name)
    fast = copy.deepcopy(plain)
    assert use_sdpa_attention(fast) == modules
    attn = [m for m in fast.modules() if isinstance(m, (BEiTAttention, WindowMSA))]
    assert len(attn) == modules and all('forward' in vars(m) for m in attn)
    assert fast.state_dict().keys() == plain.state_dict().keys()
    assert_same_numerics(fast, plain, rel=1e-5)
    # the switch really changes the computation: a wrong bias would not pass the check above
    if name == 'swin':  # the shift mask reaches SDPA (the second block of stage 0 is shifted)
        assert fast.backbone.stages[0].blocks[1].attn.shift_size == 1


def test_sdpa_attention_survives_deepcopy():
    """EMA hooks deep-copy the model: the copy computes with its own parameters."""
    model = build('beit')
    use_sdpa_attention(model)
    copied = copy.deepcopy(model)
    attn = copied.backbone.layers[0].attn
    assert attn.forward.__self__ is attn


def test_channels_last_keeps_parameters_and_numerics():
    plain = build('resnet')
    fast = copy.deepcopy(plain)
    params = list(fast.parameters())
    convs = sum(1 for p in params if p.dim() == 4)
    assert use_channels_last(fast) == convs > 10
    assert list(fast.parameters()) == params  # same objects (an optimizer keeps them)
    assert all(p.is_contiguous(memory_format=torch.channels_last)
               for p in fast.parameters() if p.dim() == 4)
    assert fast.state_dict().keys() == plain.state_dict().keys()
    for key, value in plain.state_dict().items():
        assert torch.equal(fast.state_dict()[key], value), key
    assert_same_numerics(fast, plain, rel=1e-5)


def test_fused_adamw_matches_the_default_step():
    """``optim_wrapper.optimizer.fused=True`` (torch's fused AdamW, CPU and CUDA) takes the
    same steps as the default (foreach) AdamW, ``paramwise_cfg`` groups included."""
    models, wrappers = [], []
    for fused in (False, True):
        model = build('resnet')
        optimizer = dict(type='AdamW', lr=1e-3, weight_decay=0.05, betas=(0.9, 0.95))
        if fused:
            optimizer['fused'] = True
        wrappers.append(build_optim_wrapper(model, dict(
            type='OptimWrapper', optimizer=optimizer,
            paramwise_cfg=dict(norm_decay_mult=0., bias_decay_mult=0.))))
        models.append(model)
    assert wrappers[1].optimizer.defaults['fused'] is True
    assert not wrappers[0].optimizer.defaults.get('fused')
    for _ in range(3):
        for model, wrapper in zip(models, wrappers):
            loss_and_grads(model)
            wrapper.step()
    initial = build('resnet').state_dict()
    moved = 0
    for (name, p0), p1 in zip(models[0].named_parameters(), models[1].parameters()):
        update = (p0 - initial[name]).norm()  # differences: rounding of the two kernels
        assert (p1 - p0).norm() <= 1e-3 * update + 1e-9, name
        moved += int(not torch.equal(p0, initial[name]))
    assert moved > 10


def test_fast_paths_hook_switches_and_refuses():
    vit = build('beit')
    hook = FastPathsHook(sdpa_attention=True)
    hook.before_run(SimpleNamespace(model=vit))
    assert all('forward' in vars(m) for m in vit.modules() if isinstance(m, BEiTAttention))
    resnet = build('resnet')
    FastPathsHook(channels_last=True).before_run(SimpleNamespace(model=resnet))
    assert resnet.backbone.conv1.weight.is_contiguous(memory_format=torch.channels_last)
    FastPathsHook().before_run(SimpleNamespace(model=resnet))  # default: nothing changes
    assert not any('forward' in vars(m) for m in resnet.modules())
    with pytest.raises(ValueError, match='fast_paths.sdpa_attention=True.*no BEiTAttention'):
        FastPathsHook(sdpa_attention=True).before_run(SimpleNamespace(model=resnet))
    with pytest.raises(TypeError, match='default_hooks.fast_paths.channels_last must be'):
        FastPathsHook(channels_last='yes')
