"""The plugin's SimMIM configuration on Swin is MMPretrain's own SimMIM, number for number.

The shipped SimMIM-baseline Swin config (stock ``SwinTransformer`` plus the generic
``model.mask_token`` injection, replace mode, no fill, L1 head) is built at a tiny size;
MMPretrain's ``SimMIM`` with ``SimMIMSwinTransformer``, ``SimMIMLinearDecoder`` and
``SimMIMHead`` is built with the same architecture and loaded with the plugin model's weights (strictly: the key sets are the
same). On one batch both give the same loss and the same gradient for every parameter, so the
plugin is a strict superset of the peer (A2MIM only adds the fill, the token mode and the Fourier
term on top).
"""
from pathlib import Path

import pytest
import torch
from mmengine.config import Config
from mmpretrain.registry import MODELS
from mmpretrain.structures import DataSample

import a2mim_plugin  # noqa: F401  (registers the plugin)

CONFIGS = Path(__file__).resolve().parents[2] / 'configs'
SIMMIM_SWIN = {
    'base': CONFIGS / 'simmim_baselines' /
    'a2mim-simmim_swin-base-w6_8xb128-accu2-coslr-100e_in1k-192px.py',
    'tiny': CONFIGS / 'simmim_baselines' /
    'a2mim-simmim_swin-tiny-w6_8xb128-accu2-coslr-100e_in1k-192px.py',
}
TINY_ARCH = dict(embed_dims=32, depths=[2, 2, 2, 2], num_heads=[1, 2, 4, 8])
IMG, PATCH, STRIDE = 64, 4, 32  # 16x16 patch grid, 2x2 output map
RTOL = 1e-6


def _plugin_and_peer(path: Path):
    """The plugin model built from the shipped config (tiny arch) and the peer with its weights."""
    cfg = Config.fromfile(str(path)).model
    bb = cfg.backbone
    bb.arch = dict(TINY_ARCH)
    bb.img_size = IMG
    bb.stage_cfgs.block_cfgs.window_size = 2
    channels = TINY_ARCH['embed_dims'] * 8
    cfg.neck.in_channels = channels
    torch.manual_seed(0)
    plugin = MODELS.build(cfg)
    plugin.init_weights()
    peer_backbone = {k: v for k, v in bb.items() if k != 'type'}
    peer = MODELS.build(dict(
        type='SimMIM',
        data_preprocessor=cfg.data_preprocessor,
        backbone=dict(type='SimMIMSwinTransformer', **peer_backbone),
        neck=dict(type='SimMIMLinearDecoder', in_channels=channels, encoder_stride=STRIDE),
        head=dict(type='SimMIMHead', patch_size=PATCH,
                  loss=dict(type='PixelReconstructionLoss', criterion='L1', channel=3))))
    peer.load_state_dict(plugin.state_dict(), strict=True)
    return plugin, peer


def _batch(seed: int = 1):
    gen = torch.Generator().manual_seed(seed)
    inputs = torch.randn(2, 3, IMG, IMG, generator=gen)  # normalised images
    grid = IMG // PATCH
    # SimMIM-style masks: 8x8-pixel blocks (2x2 cells) masked with probability 0.6.
    blocks = (torch.rand(2, grid // 2, grid // 2, generator=gen) < 0.6).float()
    mask = blocks.repeat_interleave(2, 1).repeat_interleave(2, 2)  # (2, 16, 16)
    samples = [DataSample().set_mask(m) for m in mask]
    return inputs, samples, mask


def _loss_and_grads(model, inputs, samples):
    model.train()
    model.zero_grad()
    losses = model.loss(inputs, samples)
    total = sum(v for v in losses.values())
    total.backward()
    grads = {n: p.grad.detach().clone() for n, p in model.named_parameters()
             if p.grad is not None}
    return total.detach(), grads


@pytest.mark.parametrize('arch', ['base', 'tiny'])
def test_simmim_swin_equals_mmpretrains_simmim(arch: str) -> None:
    plugin, peer = _plugin_and_peer(SIMMIM_SWIN[arch])
    assert type(plugin.backbone).__name__ == 'SwinTransformer'
    assert type(peer.backbone).__name__ == 'SimMIMSwinTransformer'
    assert plugin.mask_injection.replace and plugin.input_fill is None
    inputs, samples, mask = _batch()
    assert 0 < mask.mean() < 1

    loss_plugin, grads_plugin = _loss_and_grads(plugin, inputs, samples)
    loss_peer, grads_peer = _loss_and_grads(peer, inputs, samples)

    assert torch.isfinite(loss_plugin) and loss_plugin > 0
    assert torch.allclose(loss_plugin, loss_peer, rtol=RTOL, atol=0), (loss_plugin, loss_peer)
    assert grads_plugin.keys() == grads_peer.keys()
    assert 'backbone.mask_token' in grads_plugin
    assert grads_plugin['backbone.mask_token'].abs().sum() > 0
    for name, grad in grads_plugin.items():
        ref = grads_peer[name]
        assert torch.isfinite(grad).all(), name
        scale = ref.abs().max().clamp_min(1e-12)
        assert (grad - ref).abs().max() <= RTOL * scale + 1e-12, name


def test_equivalence_test_detects_a_different_token_mode() -> None:
    """The comparison is sharp: adding the token (A2MIM's mode) instead of replacing changes the
    loss beyond the tolerance, so a silently wrong mode would fail the test above."""
    plugin, peer = _plugin_and_peer(SIMMIM_SWIN['tiny'])
    plugin.mask_injection.replace = False
    inputs, samples, _ = _batch()
    loss_plugin, _ = _loss_and_grads(plugin, inputs, samples)
    loss_peer, _ = _loss_and_grads(peer, inputs, samples)
    assert not torch.allclose(loss_plugin, loss_peer, rtol=RTOL, atol=0)
