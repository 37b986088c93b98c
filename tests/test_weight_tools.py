"""Tests of the weight tools: tools/export_backbone.py and tools/convert_official.py.

The export tests run a real (2-iteration) pre-training through mmengine's Runner. The
conversion tests build state dicts with the official OpenMixup names and shapes, written out
here from openmixup/models/backbones/{vision_transformer,mim_vit,resnet_mmcls,mim_resnet,
convnext}.py and openmixup/models/utils/layers/attention.py.
"""
import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from mmengine.config import Config
from mmengine.runner import Runner
from mmpretrain.models.backbones import (BEiTViT, ConvNeXt, ResNet, SwinTransformer,
                                         VisionTransformer)

import a2mim_plugin  # noqa: F401
from a2mim_plugin.models.backbones import (A2MIMConvNeXt, A2MIMPlainViT, A2MIMResNet,
                                           A2MIMViT)
from a2mim_plugin.utils import weights as W

REPO = Path(__file__).resolve().parents[1]
EXPORT = REPO / 'tools' / 'export_backbone.py'
CONVERT = REPO / 'tools' / 'convert_official.py'
TINY_VIT = dict(embed_dims=64, num_layers=2, num_heads=2, feedforward_channels=128)


def _load_tool(path: Path):
    spec = importlib.util.spec_from_file_location(f'_tool_{path.stem}', path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


export_tool = _load_tool(EXPORT)
convert_tool = _load_tool(CONVERT)


def run_cli(script: Path, *args):
    """The tool as a user runs it: a fresh interpreter."""
    proc = subprocess.run([sys.executable, str(script), *map(str, args)], cwd=REPO,
                          capture_output=True, text=True, timeout=300)
    return proc.returncode, proc.stdout, proc.stderr


def run_inproc(tool, capsys, *args):
    """The same ``main`` in this process (saves the interpreter start-up)."""
    capsys.readouterr()
    code = tool.main([str(a) for a in args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def load(path) -> dict:
    return torch.load(path, map_location='cpu', weights_only=True)


def strip(state: dict) -> dict:
    assert all(k.startswith('backbone.') for k in state), sorted(state)[:5]
    return {k[len('backbone.'):]: v for k, v in state.items()}


def assert_loads_exactly(model: torch.nn.Module, state: dict) -> None:
    missing, unexpected = model.load_state_dict(state, strict=False)
    assert missing == [] and unexpected == [], (missing, unexpected)
    for key, value in model.state_dict().items():
        assert torch.equal(value, state[key]), key


def assert_builtin(obj) -> None:
    """Only plain Python values: the meta must load with weights_only=True without the
    plugin's allow-list (downstream MMDetection / MMSegmentation do not import it)."""
    if isinstance(obj, dict):
        for key, value in obj.items():
            assert isinstance(key, str)
            assert_builtin(value)
    elif isinstance(obj, (list, tuple)):
        for value in obj:
            assert_builtin(value)
    else:
        assert obj is None or type(obj) in (bool, int, float, str), type(obj)


# --------------------------------------------------------------------------------------------
# A real tiny pre-training per backbone family
# --------------------------------------------------------------------------------------------
PRETRAIN = {
    'resnet': dict(backbone=dict(type='A2MIMResNet', depth=18, mask_layer=3, out_indices=(3, ),
                                 mask_init=1e-6),
                   stride=16, neck_in=512, encoder_stride=32,
                   loss=dict(type='FocalL1Loss', alpha=0.2, gamma=1.0)),
    'vit': dict(backbone=dict(type='A2MIMViT', arch=TINY_VIT, img_size=64, patch_size=16),
                stride=16, neck_in=64, encoder_stride=16, loss=dict(type='ElementwiseL1Loss')),
    'convnext': dict(backbone=dict(type='A2MIMConvNeXt', arch='atto', mask_layer=3,
                                   out_indices=(3, ), mask_init=1e-6),
                     stride=32, neck_in=320, encoder_stride=32,
                     loss=dict(type='FocalL1Loss', alpha=0.2, gamma=1.0)),
    # A stock backbone through the generic injection (model.mask_token), as the Swin configs.
    'swin': dict(backbone=dict(type='SwinTransformer', arch=dict(embed_dims=16, depths=[1, 1, 1, 1],
                                                                 num_heads=[1, 1, 2, 2]),
                               img_size=64, out_indices=(3, ),
                               stage_cfgs=dict(block_cfgs=dict(window_size=2))),
                 mask_token=dict(at='patch_embed', on='output', mask_init=1e-6),
                 stride=4, neck_in=128, encoder_stride=32, loss=dict(type='ElementwiseL1Loss')),
}
# The plain MMPretrain backbones the exports must load into, written out independently.
PLAIN = {
    'resnet': lambda: ResNet(depth=18, out_indices=(3, )),
    'vit': lambda: BEiTViT(arch=TINY_VIT, img_size=64, patch_size=16, use_abs_pos_emb=True,
                           use_rel_pos_bias=True, layer_scale_init_value=0.1, final_norm=True,
                           out_type='featmap'),
    'convnext': lambda: ConvNeXt(arch='atto', out_indices=(3, ), gap_before_final_norm=False),
    'swin': lambda: SwinTransformer(arch=dict(embed_dims=16, depths=[1, 1, 1, 1],
                                              num_heads=[1, 1, 2, 2]),
                                    img_size=64, out_indices=(3, ),
                                    stage_cfgs=dict(block_cfgs=dict(window_size=2))),
}


def pretrain_cfg(arch: str, data_root: Path, work_dir: Path) -> dict:
    spec = PRETRAIN[arch]
    pipeline = [
        dict(type='LoadImageFromFile'),
        dict(type='RandomResizedCrop', scale=64),
        dict(type='RandomFlip', prob=0.5),
        dict(type='SimMIMMaskGenerator', input_size=64, mask_patch_size=32,
             model_patch_size=spec['stride'], mask_ratio=0.6),
        dict(type='PackInputs'),
    ]
    return dict(
        default_scope='mmpretrain',
        custom_imports=dict(imports=['a2mim_plugin'], allow_failed_imports=False),
        model=dict(
            type='A2MIM', backbone=spec['backbone'], mask_token=spec.get('mask_token'),
            neck=dict(type='A2MIMLinearDecoder', in_channels=spec['neck_in'],
                      encoder_stride=spec['encoder_stride']),
            head=dict(type='A2MIMHead', loss=spec['loss'], fft_weight=0.1, fft_focal=True,
                      fft_unmask_replace='mixed'),
            data_preprocessor=dict(type='SelfSupDataPreprocessor',
                                   mean=[123.675, 116.28, 103.53], std=[58.395, 57.12, 57.375],
                                   to_rgb=True)),
        train_dataloader=dict(
            batch_size=2, num_workers=0, sampler=dict(type='DefaultSampler', shuffle=True),
            collate_fn=dict(type='default_collate'),
            dataset=dict(type='CustomDataset', data_root=str(data_root), data_prefix='train',
                         with_label=False, pipeline=pipeline)),
        train_cfg=dict(type='IterBasedTrainLoop', max_iters=2),
        optim_wrapper=dict(type='OptimWrapper',
                           optimizer=dict(type='AdamW', lr=1e-3, weight_decay=0.05)),
        default_hooks=dict(checkpoint=dict(type='CheckpointHook', interval=2, by_epoch=False),
                           logger=dict(type='LoggerHook', interval=1)),
        work_dir=str(work_dir), experiment_name=f'weight_tools_{arch}_{work_dir.name}',
        log_level='WARNING')


@pytest.fixture(scope='module')
def pretrained(photo_dataset, tmp_path_factory):
    """``pretrained(arch)`` -> path of a runner checkpoint after 2 real training iterations."""
    cache = {}

    def get(arch: str) -> Path:
        if arch not in cache:
            work_dir = tmp_path_factory.mktemp(f'pretrain_{arch}')
            runner = Runner.from_cfg(Config(pretrain_cfg(arch, photo_dataset, work_dir)))
            runner.train()
            cache[arch] = work_dir / 'iter_2.pth'
            assert cache[arch].is_file()
        return cache[arch]

    return get


def test_runner_checkpoint_is_read_with_weights_only(pretrained):
    ckpt = load(pretrained('resnet'))  # message_hub, optimizer and meta included
    assert {'meta', 'state_dict', 'message_hub', 'optimizer'} <= set(ckpt)
    assert isinstance(ckpt['meta']['cfg'], str) and 'A2MIMResNet' in ckpt['meta']['cfg']


@pytest.mark.parametrize('arch', ['resnet', 'vit', 'convnext', 'swin'])
def test_export_real_pretraining(arch, pretrained, tmp_path, capsys):
    ckpt_path = pretrained(arch)
    out = tmp_path / 'exported' / 'backbone.pth'
    if arch == 'resnet':  # one real command line; the others call the same main() in-process
        code, stdout, stderr = run_cli(EXPORT, ckpt_path, out)
    else:
        code, stdout, stderr = run_inproc(export_tool, capsys, ckpt_path, out)
    assert code == 0, stderr
    assert 'Wrote' in stdout
    assert not [p for p in out.parent.iterdir() if p.name != 'backbone.pth']  # no temp left

    exported = load(out)
    assert set(exported) == {'state_dict', 'meta'}
    source = load(ckpt_path)['state_dict']
    expected = {k: v for k, v in source.items() if k.startswith('backbone.')
                and k not in ('backbone.mask_token', 'backbone.mask_gamma')}
    assert 'backbone.mask_token' in source  # the pre-training had one; the export drops it
    assert set(exported['state_dict']) == set(expected)
    for key, value in expected.items():
        assert torch.equal(exported['state_dict'][key], value), key

    meta = exported['meta']
    assert_builtin(meta)
    assert meta['mask_params'] == 'dropped' and 'mask_token' in meta['dropped_mask_params']
    assert meta['source_iter'] == 2
    generic = PRETRAIN[arch].get('mask_token')
    assert meta['pretrain_backbone_cfg']['type'] == (
        PRETRAIN[arch]['backbone']['type'] if generic else meta['pretrain_backbone_cfg']['type'])
    assert meta['pretrain_backbone_cfg']['type'].startswith('A2MIM') != bool(generic)
    assert meta['mask_token_cfg'] == generic
    assert len(meta['source_sha256']) == 64

    plain = PLAIN[arch]()
    assert_loads_exactly(plain, strip(exported['state_dict']))

    # the plain backbone equals the pre-training backbone run without a mask
    full = strip({k: v for k, v in source.items() if k.startswith('backbone.')})
    a2mim = W.build_pretrain_backbone(meta['pretrain_backbone_cfg'], meta['mask_token_cfg'],
                                      full)
    a2mim.load_state_dict(full)
    plain.eval(), a2mim.eval()
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        for a, b in zip(plain(x), a2mim(x) if generic else a2mim(x, mask=None)):
            torch.testing.assert_close(a, b)


def test_export_loads_with_pretrained_init_cfg(pretrained, tmp_path, capsys):
    """The downstream path: init_cfg=Pretrained(prefix='backbone.') on the exported file."""
    out = tmp_path / 'r18.pth'
    assert run_inproc(export_tool, capsys, pretrained('resnet'), out)[0] == 0
    model = ResNet(depth=18, out_indices=(3, ),
                   init_cfg=dict(type='Pretrained', checkpoint=str(out), prefix='backbone.'))
    model.init_weights()
    exported = strip(load(out)['state_dict'])
    for key, value in model.state_dict().items():
        assert torch.equal(value, exported[key]), key


@pytest.mark.parametrize('target', ['mmdet', 'mmseg'])
def test_export_resnet_for_detection_and_segmentation(target, pretrained, tmp_path, capsys):
    out = tmp_path / f'r18_{target}.pth'
    code, _, stderr = run_inproc(export_tool, capsys, pretrained('resnet'), out,
                                 '--target', target)
    assert code == 0, stderr
    exported = load(out)
    assert exported['meta']['checked_against'].startswith(f'{target}.models')
    if target == 'mmdet':
        from mmdet.models.backbones import ResNet as DownstreamResNet
    else:
        from mmseg.models.backbones import ResNet as DownstreamResNet
    assert_loads_exactly(DownstreamResNet(depth=18, out_indices=(3, )),
                         strip(exported['state_dict']))


def test_export_vit_for_detection_uses_mmpretrain_type(pretrained, tmp_path, capsys):
    out = tmp_path / 'vit_det.pth'
    assert run_inproc(export_tool, capsys, pretrained('vit'), out, '--target', 'mmdet')[0] == 0
    assert load(out)['meta']['backbone_cfg']['type'] == 'mmpretrain.BEiTViT'


@pytest.mark.parametrize('arch', ['convnext', 'vit', 'swin'])
def test_export_keep_mask_token(arch, pretrained, tmp_path, capsys):
    out = tmp_path / 'with_mask.pth'
    code, _, stderr = run_inproc(export_tool, capsys, pretrained(arch), out, '--keep-mask-token')
    assert code == 0, stderr
    exported = load(out)
    assert 'backbone.mask_token' in exported['state_dict']
    assert exported['meta']['mask_params'] == 'kept'
    state = strip(exported['state_dict'])
    a2mim = W.build_pretrain_backbone(exported['meta']['pretrain_backbone_cfg'],
                                      exported['meta']['mask_token_cfg'], state)
    assert_loads_exactly(a2mim, state)


def test_export_plain_vit_and_explicit_cfg(tmp_path, capsys):
    """A2MIMPlainViT -> VisionTransformer; a checkpoint without meta['cfg'] needs --cfg."""
    backbone = dict(type='A2MIMPlainViT', arch=TINY_VIT, img_size=64, patch_size=16,
                    mask_layer=1)
    model = A2MIMPlainViT(**{k: v for k, v in backbone.items() if k != 'type'})
    state = {'backbone.' + k: v for k, v in model.state_dict().items()}
    state['neck.decoder.0.weight'] = torch.zeros(3)
    ckpt_path = tmp_path / 'plain_vit.pth'
    torch.save(dict(meta=dict(iter=5), state_dict=state), ckpt_path)
    out = tmp_path / 'out.pth'

    code, _, stderr = run_inproc(export_tool, capsys, ckpt_path, out)
    assert code == 1 and '--cfg' in stderr and not out.exists()

    cfg_path = tmp_path / 'pretrain.py'
    Config(dict(model=dict(type='A2MIM', backbone=backbone))).dump(str(cfg_path))
    code, _, stderr = run_inproc(export_tool, capsys, ckpt_path, out, '--cfg', cfg_path)
    assert code == 0, stderr
    exported = load(out)
    assert exported['meta']['backbone_cfg']['type'] == 'VisionTransformer'
    assert_loads_exactly(VisionTransformer(arch=TINY_VIT, img_size=64, patch_size=16,
                                           final_norm=True, out_type='featmap'),
                         strip(exported['state_dict']))


@pytest.mark.parametrize('cfg', [
    dict(type='A2MIMViT', arch=TINY_VIT, img_size=64, patch_size=16),
    dict(type='A2MIMViT', arch=TINY_VIT, img_size=64, patch_size=16, mask_init=1e-6),
    dict(type='A2MIMPlainViT', arch=TINY_VIT, img_size=64, patch_size=16),
    dict(type='A2MIMResNet', depth=18, mask_layer=2, mask_init=1e-6),
    dict(type='A2MIMConvNeXt', arch='atto', mask_layer=1, mask_init=1e-6),
])
def test_plain_family_matches_a2mim_backbone(cfg):
    """The plain backbone built by the tools has exactly the A2MIM backbone's non-mask keys and
    shapes (guards each preset's plain_config against changes of its defaults)."""
    a2mim = W.build_pretrain_backbone(cfg)
    plain = W.build_plain_backbone(W.plain_backbone_cfg(cfg))
    expected = {k: tuple(v.shape) for k, v in a2mim.state_dict().items() if k not in W.MASK_KEYS}
    assert {k: tuple(v.shape) for k, v in plain.state_dict().items()} == expected
    assert any(k in W.MASK_KEYS for k in a2mim.state_dict())


# --------------------------------------------------------------------------------------------
# Broken inputs: non-zero exit, keys listed on stderr, nothing written
# --------------------------------------------------------------------------------------------
def _resave(src: Path, dst: Path, edit) -> Path:
    ckpt = load(src)
    edit(ckpt)
    torch.save(ckpt, dst)
    return dst


def test_export_renamed_key_fails_with_key_list(pretrained, tmp_path):
    def rename(ckpt):
        sd = ckpt['state_dict']
        sd['backbone.layer1.0.conv_renamed.weight'] = sd.pop('backbone.layer1.0.conv1.weight')

    bad = _resave(pretrained('resnet'), tmp_path / 'renamed.pth', rename)
    out = tmp_path / 'out.pth'
    code, _, stderr = run_cli(EXPORT, bad, out)
    assert code == 1
    assert 'missing keys' in stderr and 'layer1.0.conv1.weight' in stderr
    assert 'unexpected keys' in stderr and 'layer1.0.conv_renamed.weight' in stderr
    assert not out.exists() and list(tmp_path.iterdir()) == [bad]


def test_export_shape_mismatch_and_missing_backbone(pretrained, tmp_path, capsys):
    def shrink(ckpt):
        sd = ckpt['state_dict']
        sd['backbone.layers.1.attn.relative_position_bias_table'] = \
            sd['backbone.layers.1.attn.relative_position_bias_table'][:-1]
        del sd['backbone.ln1.weight']

    bad = _resave(pretrained('vit'), tmp_path / 'shape.pth', shrink)
    code, _, stderr = run_inproc(export_tool, capsys, bad, tmp_path / 'out.pth')
    assert code == 1
    assert 'shape mismatches' in stderr and 'layers.1.attn.relative_position_bias_table' in stderr
    assert 'ln1.weight' in stderr

    def drop_backbone(ckpt):
        ckpt['state_dict'] = {k: v for k, v in ckpt['state_dict'].items()
                              if not k.startswith('backbone.')}

    bad = _resave(pretrained('vit'), tmp_path / 'nobackbone.pth', drop_backbone)
    code, _, stderr = run_inproc(export_tool, capsys, bad, tmp_path / 'out.pth')
    assert code == 1 and 'backbone.' in stderr
    assert not (tmp_path / 'out.pth').exists()


def test_unsafe_pickle_is_refused_not_loaded_unsafely(pretrained, tmp_path, capsys):
    import argparse
    bad = _resave(pretrained('resnet'), tmp_path / 'unsafe.pth',
                  lambda ckpt: ckpt['meta'].update(obj=argparse.Namespace(a=1)))
    code, _, stderr = run_inproc(export_tool, capsys, bad, tmp_path / 'out.pth')
    assert code == 1 and 'weights_only=True' in stderr and 'Namespace' in stderr


# --------------------------------------------------------------------------------------------
# Official OpenMixup checkpoints (names and shapes as in the official code)
# --------------------------------------------------------------------------------------------
def _gen():
    return torch.Generator().manual_seed(0)


def _t(gen, *shape):
    return torch.randn(*shape, generator=gen)


def official_rel_pos_index(grid: int) -> torch.Tensor:
    """The relative position index of openmixup's MultiheadAttentionWithRPE for a square
    window (BEiT scheme): token pairs get (dy + g - 1) * (2g - 1) + (dx + g - 1); the cls row,
    cls column and cls-cls entry get the last three table rows."""
    n = (2 * grid - 1)**2 + 3
    coords = [(y, x) for y in range(grid) for x in range(grid)]
    index = torch.zeros(grid * grid + 1, grid * grid + 1, dtype=torch.long)
    for i, (y1, x1) in enumerate(coords):
        for j, (y2, x2) in enumerate(coords):
            index[i + 1, j + 1] = (y1 - y2 + grid - 1) * (2 * grid - 1) + (x1 - x2 + grid - 1)
    index[0, :] = n - 3
    index[:, 0] = n - 2
    index[0, 0] = n - 1
    return index


def official_vit(dims=64, layers=2, heads=2, ffn=128, img=64, patch=16,
                 use_window=True, init_values=0.1) -> dict:
    """openmixup SimMIMViT (VisionTransformer + mask token), mmcv-1.x names."""
    gen, grid = _gen(), img // patch
    sd = {'cls_token': _t(gen, 1, 1, dims), 'pos_embed': _t(gen, 1, grid * grid + 1, dims),
          'patch_embed.projection.weight': _t(gen, dims, 3, patch, patch),
          'patch_embed.projection.bias': _t(gen, dims)}
    for i in range(layers):
        p = f'layers.{i}.'
        sd.update({p + 'ln1.weight': _t(gen, dims), p + 'ln1.bias': _t(gen, dims),
                   p + 'attn.qkv.weight': _t(gen, 3 * dims, dims),
                   p + 'attn.proj.weight': _t(gen, dims, dims), p + 'attn.proj.bias': _t(gen, dims),
                   p + 'ln2.weight': _t(gen, dims), p + 'ln2.bias': _t(gen, dims),
                   p + 'ffn.layers.0.0.weight': _t(gen, ffn, dims),
                   p + 'ffn.layers.0.0.bias': _t(gen, ffn),
                   p + 'ffn.layers.1.weight': _t(gen, dims, ffn),
                   p + 'ffn.layers.1.bias': _t(gen, dims)})
        if use_window:  # MultiheadAttentionWithRPE: q/v bias, per-layer table and index
            sd.update({p + 'attn.q_bias': _t(gen, dims), p + 'attn.v_bias': _t(gen, dims),
                       p + 'attn.relative_position_bias_table':
                       _t(gen, (2 * grid - 1)**2 + 3, heads),
                       p + 'attn.relative_position_index': official_rel_pos_index(grid)})
        else:  # MultiheadAttention: qkv with bias
            sd[p + 'attn.qkv.bias'] = _t(gen, 3 * dims)
        if init_values > 0:
            sd.update({p + 'gamma_1': _t(gen, dims), p + 'gamma_2': _t(gen, dims)})
    sd.update({'ln1.weight': _t(gen, dims), 'ln1.bias': _t(gen, dims),  # final norm (norm1)
               'mask_token': _t(gen, 1, 1, dims)})
    return sd


def _bn(gen, prefix: str, c: int) -> dict:
    return {prefix + 'weight': _t(gen, c), prefix + 'bias': _t(gen, c),
            prefix + 'running_mean': _t(gen, c),
            prefix + 'running_var': torch.rand(c, generator=gen) + 0.5,
            prefix + 'num_batches_tracked': torch.tensor(7)}


def official_resnet18(mask_channels=256) -> dict:
    """openmixup MIMResNet(depth=18): mmcls-style BasicBlock names, token and gamma 1xCx1x1."""
    gen = _gen()
    sd = {'conv1.weight': _t(gen, 64, 3, 7, 7), **_bn(gen, 'bn1.', 64)}
    c_in = 64
    for stage, c in enumerate((64, 128, 256, 512), start=1):
        for block in range(2):
            p = f'layer{stage}.{block}.'
            sd[p + 'conv1.weight'] = _t(gen, c, c_in if block == 0 else c, 3, 3)
            sd.update(_bn(gen, p + 'bn1.', c))
            sd[p + 'conv2.weight'] = _t(gen, c, c, 3, 3)
            sd.update(_bn(gen, p + 'bn2.', c))
            if block == 0 and c_in != c:
                sd[p + 'downsample.0.weight'] = _t(gen, c, c_in, 1, 1)
                sd.update(_bn(gen, p + 'downsample.1.', c))
        c_in = c
    sd['mask_token'] = _t(gen, 1, mask_channels, 1, 1)
    sd['mask_gamma'] = torch.full((1, mask_channels, 1, 1), 1e-6)
    return sd


def official_convnext(depths=(1, 1, 2, 1), channels=(8, 16, 32, 64)) -> dict:
    """openmixup MIMConvNeXt: stem conv + LN2d, LN2d + 2x2 conv downsamples, linear pointwise
    convs, layer scale ``gamma``, final ``norm3``; token and gamma 1xCx1x1 (mask_layer 3)."""
    gen = _gen()
    c0 = channels[0]
    sd = {'downsample_layers.0.0.weight': _t(gen, c0, 3, 4, 4),
          'downsample_layers.0.0.bias': _t(gen, c0),
          'downsample_layers.0.1.weight': _t(gen, c0), 'downsample_layers.0.1.bias': _t(gen, c0)}
    for i in range(1, 4):
        p = f'downsample_layers.{i}.'
        sd.update({p + '0.weight': _t(gen, channels[i - 1]), p + '0.bias': _t(gen, channels[i - 1]),
                   p + '1.weight': _t(gen, channels[i], channels[i - 1], 2, 2),
                   p + '1.bias': _t(gen, channels[i])})
    for i, (depth, c) in enumerate(zip(depths, channels)):
        for j in range(depth):
            p = f'stages.{i}.{j}.'
            sd.update({p + 'depthwise_conv.weight': _t(gen, c, 1, 7, 7),
                       p + 'depthwise_conv.bias': _t(gen, c),
                       p + 'norm.weight': _t(gen, c), p + 'norm.bias': _t(gen, c),
                       p + 'pointwise_conv1.weight': _t(gen, 4 * c, c),
                       p + 'pointwise_conv1.bias': _t(gen, 4 * c),
                       p + 'pointwise_conv2.weight': _t(gen, c, 4 * c),
                       p + 'pointwise_conv2.bias': _t(gen, c), p + 'gamma': _t(gen, c)})
    sd.update({'norm3.weight': _t(gen, channels[3]), 'norm3.bias': _t(gen, channels[3]),
               'mask_token': _t(gen, 1, channels[3], 1, 1),
               'mask_gamma': torch.full((1, channels[3], 1, 1), 1e-6)})
    return sd


def save_official(sd: dict, path: Path, form: str) -> Path:
    if form == 'full':  # an OpenMixup (mmcv 1.x) training checkpoint
        state = {'backbone.' + k: v for k, v in sd.items()}
        state.update({'neck.decoder_pred.0.weight': torch.zeros(48, 8, 1, 1),
                      'neck.decoder_pred.0.bias': torch.zeros(48)})
        torch.save(dict(meta=dict(mmcv_version='1.7.0', epoch=800, iter=500800,
                                  time='Sat Jan 14 2023'),
                        state_dict=state,
                        optimizer=dict(state={}, param_groups=[dict(lr=1e-4, params=[0])])),
                   path)
    else:  # tools/model_converters/extract_backbone_weights.py output
        torch.save(dict(state_dict=sd, author='openmixup'), path)
    return path


def test_official_relative_position_index_matches_beit():
    """The stored index is copied as is, so it must be MMPretrain's own."""
    model = BEiTViT(arch=TINY_VIT, img_size=64, patch_size=16, use_rel_pos_bias=True)
    assert torch.equal(model.layers[0].attn.relative_position_index, official_rel_pos_index(4))


@pytest.mark.parametrize('form', ['full', 'backbone-only'])
def test_convert_official_vit(form, tmp_path, capsys):
    official = official_vit()
    src = save_official(official, tmp_path / 'official_vit.pth', form)
    out = tmp_path / 'vit.pth'
    if form == 'full':
        code, stdout, stderr = run_cli(CONVERT, src, out, '--arch', 'vit')
    else:
        code, stdout, stderr = run_inproc(convert_tool, capsys, src, out, '--arch', 'vit')
    assert code == 0, stderr
    converted = load(out)
    assert_builtin(converted['meta'])
    state = strip(converted['state_dict'])
    assert 'mask_token' not in state
    assert_loads_exactly(PLAIN['vit'](), state)
    for key in ('layers.1.attn.q_bias', 'layers.1.attn.v_bias', 'layers.1.gamma_1',
                'layers.1.gamma_2', 'layers.1.attn.relative_position_bias_table',
                'layers.1.ffn.layers.0.0.weight', 'ln1.weight', 'pos_embed'):
        assert torch.equal(state[key], official[key]), key
    assert converted['meta']['backbone_cfg']['arch'] == TINY_VIT
    assert converted['meta']['source_form'] == f'official OpenMixup {form} checkpoint'


def test_convert_official_vit_keep_mask_token(tmp_path, capsys):
    official = official_vit()
    src = save_official(official, tmp_path / 'official_vit.pth', 'backbone-only')
    out = tmp_path / 'vit.pth'
    code, _, stderr = run_inproc(convert_tool, capsys, src, out, '--arch', 'vit',
                                 '--keep-mask-token')
    assert code == 0, stderr
    state = strip(load(out)['state_dict'])
    assert state['mask_token'].shape == (1, 1, 64)
    assert torch.equal(state['mask_token'], official['mask_token'])
    model = A2MIMViT(arch=TINY_VIT, img_size=64, patch_size=16)
    assert_loads_exactly(model, state)


def test_convert_official_plain_vit_layout(tmp_path, capsys):
    """use_window=False ViT with layer scale -> MMPretrain VisionTransformer names."""
    official = official_vit(use_window=False)
    src = save_official(official, tmp_path / 'official_plain.pth', 'full')
    out = tmp_path / 'plain.pth'
    code, _, stderr = run_inproc(convert_tool, capsys, src, out, '--arch', 'vit',
                                 '--vit-layout', 'plain')
    assert code == 1 and '--num-heads' in stderr  # no RPE table: heads must be given
    code, _, stderr = run_inproc(convert_tool, capsys, src, out, '--arch', 'vit',
                                 '--vit-layout', 'plain', '--num-heads', '2')
    assert code == 0, stderr
    state = strip(load(out)['state_dict'])
    assert torch.equal(state['layers.1.attn.gamma1.weight'], official['layers.1.gamma_1'])
    assert torch.equal(state['layers.1.ffn.gamma2.weight'], official['layers.1.gamma_2'])
    assert torch.equal(state['layers.1.attn.qkv.bias'], official['layers.1.attn.qkv.bias'])
    assert_loads_exactly(VisionTransformer(arch=TINY_VIT, img_size=64, patch_size=16,
                                           layer_scale_init_value=0.1, final_norm=True,
                                           out_type='featmap'), state)
    # a BEiT-style (use_window=True) checkpoint does not fit the plain layout
    src = save_official(official_vit(), tmp_path / 'official_beit.pth', 'full')
    code, _, stderr = run_inproc(convert_tool, capsys, src, out, '--arch', 'vit',
                                 '--vit-layout', 'plain')
    assert code == 1 and 'beit' in stderr


@pytest.mark.parametrize('form', ['full', 'backbone-only'])
def test_convert_official_resnet(form, tmp_path, capsys):
    official = official_resnet18()
    src = save_official(official, tmp_path / 'official_r18.pth', form)
    out = tmp_path / 'r18.pth'
    code, _, stderr = run_inproc(convert_tool, capsys, src, out, '--arch', 'resnet',
                                 '--depth', '18', '--keep-mask-token')
    assert code == 0, stderr
    state = strip(load(out)['state_dict'])
    for key in ('layer3.1.bn2.running_var', 'layer4.0.downsample.0.weight', 'conv1.weight',
                'layer2.0.bn1.num_batches_tracked', 'mask_gamma'):
        assert torch.equal(state[key], official[key]), key
    assert state['mask_token'].shape == (1, 256, 1, 1)
    assert_loads_exactly(A2MIMResNet(depth=18, mask_layer=3, mask_init=1e-6,
                                     out_indices=(3, )), state)
    plain = {k: v for k, v in state.items() if k not in W.MASK_KEYS}
    assert_loads_exactly(ResNet(depth=18, out_indices=(3, )), plain)
    assert load(out)['meta']['a2mim_backbone_cfg']['mask_layer'] == 3


@pytest.mark.parametrize('form', ['full', 'backbone-only'])
def test_convert_official_convnext(form, tmp_path, capsys):
    official = official_convnext()
    src = save_official(official, tmp_path / 'official_convnext.pth', form)
    out = tmp_path / 'convnext.pth'
    code, _, stderr = run_inproc(convert_tool, capsys, src, out, '--arch', 'convnext')
    assert code == 0, stderr
    converted = load(out)
    state = strip(converted['state_dict'])
    assert not set(W.MASK_KEYS) & set(state)
    for key in ('stages.2.1.gamma', 'stages.2.1.pointwise_conv1.weight',
                'downsample_layers.3.1.weight', 'downsample_layers.0.1.bias', 'norm3.weight'):
        assert torch.equal(state[key], official[key]), key
    arch = dict(depths=[1, 1, 2, 1], channels=[8, 16, 32, 64])
    assert converted['meta']['backbone_cfg']['arch'] == arch
    assert_loads_exactly(ConvNeXt(arch=arch, out_indices=(3, ), gap_before_final_norm=False),
                         state)
    # with the token: loads into this plugin's A2MIMConvNeXt at mask_layer 3
    code, _, stderr = run_inproc(convert_tool, capsys, src, out, '--arch', 'convnext',
                                 '--keep-mask-token')
    assert code == 0, stderr
    assert_loads_exactly(A2MIMConvNeXt(arch=arch, mask_layer=3, mask_init=1e-6),
                         strip(load(out)['state_dict']))


def test_convert_rejects_wrong_or_broken_weights(tmp_path, capsys):
    out = tmp_path / 'out.pth'
    r18 = save_official(official_resnet18(), tmp_path / 'r18.pth', 'full')
    code, _, stderr = run_inproc(convert_tool, capsys, r18, out, '--arch', 'resnet',
                                 '--depth', '50')
    assert code == 1 and 'ResNet-18' in stderr

    broken = official_resnet18()
    broken['layer2.1.bn_x.weight'] = broken.pop('layer2.1.bn1.weight')
    src = save_official(broken, tmp_path / 'broken.pth', 'backbone-only')
    code, _, stderr = run_inproc(convert_tool, capsys, src, out, '--arch', 'resnet')
    assert code == 1
    assert 'layer2.1.bn1.weight' in stderr and 'layer2.1.bn_x.weight' in stderr

    vit = official_vit()
    vit['layers.0.attn.relative_position_index'] = vit['layers.0.attn.relative_position_index'].t()
    src = save_official(vit, tmp_path / 'vit_index.pth', 'full')
    code, _, stderr = run_inproc(convert_tool, capsys, src, out, '--arch', 'vit')
    assert code == 1 and 'layers.0.attn.relative_position_index' in stderr

    code, _, stderr = run_inproc(convert_tool, capsys, r18, out, '--arch', 'convnext')
    assert code == 1 and 'ConvNeXt' in stderr
    assert not out.exists()


# --------------------------------------------------------------------------------------------
# --help
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize('script', [EXPORT, CONVERT])
def test_help(script):
    code, stdout, stderr = run_cli(script, '--help')
    assert code == 0, stderr
    assert 'usage:' in stdout and "prefix='backbone.'" in stdout and 'OUT.pth' in stdout
