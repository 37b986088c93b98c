"""Edge cases of the weight tools (issue 15): ``tools/convert_official.py`` flags and argument
misuse, ResNet stems and shortcuts read from the weights, the mask-token channel check, and the
checkpoint readers of ``a2mim_plugin.utils.weights``.

Official state dicts are built with the OpenMixup names and shapes (``test_weight_tools``'s
builders, plus a ResNet builder below written from openmixup ``resnet_mmcls.py``: deep stem =
three ConvModules ``stem.{0,1,2}.{conv,bn}`` of widths C/2, C/2, C; ``avg_down`` shortcut =
``AvgPool2d, conv, bn`` when the block strides, ``conv, bn`` otherwise).
"""
from pathlib import Path
from typing import Dict

import pytest
import torch
from mmpretrain.models.backbones import BEiTViT, ConvNeXt, ResNet, VisionTransformer

from a2mim_plugin.models.backbones import A2MIMResNet, A2MIMViT
from a2mim_plugin.utils import weights as W
from test_weight_tools import (CONVERT, _bn, _gen, _t, assert_loads_exactly, convert_tool, load,
                               official_convnext, official_vit, run_cli, run_inproc,
                               save_official, strip)

TINY_VIT = dict(embed_dims=64, num_layers=2, num_heads=2, feedforward_channels=128)


def official_resnet18(deep_stem: bool = False, avg_down: bool = False, stem: int = 64,
                      base: int = 64, mask_channels: int = 0) -> Dict[str, torch.Tensor]:
    """openmixup ``ResNet(depth=18, deep_stem, avg_down, stem_channels, base_channels)``."""
    gen = _gen()
    sd: Dict[str, torch.Tensor] = {}
    if deep_stem:
        for i, (c_out, c_in) in enumerate(((stem // 2, 3), (stem // 2, stem // 2),
                                           (stem, stem // 2))):
            sd[f'stem.{i}.conv.weight'] = _t(gen, c_out, c_in, 3, 3)
            sd.update(_bn(gen, f'stem.{i}.bn.', c_out))
    else:
        sd['conv1.weight'] = _t(gen, stem, 3, 7, 7)
        sd.update(_bn(gen, 'bn1.', stem))
    c_in = stem
    for stage in range(1, 5):
        c = base * 2**(stage - 1)
        strided = stage > 1
        for block in range(2):
            p = f'layer{stage}.{block}.'
            sd[p + 'conv1.weight'] = _t(gen, c, c_in if block == 0 else c, 3, 3)
            sd.update(_bn(gen, p + 'bn1.', c))
            sd[p + 'conv2.weight'] = _t(gen, c, c, 3, 3)
            sd.update(_bn(gen, p + 'bn2.', c))
            if block == 0 and (strided or c_in != c):
                first = 1 if avg_down and strided else 0  # index 0 is the AvgPool2d
                sd[p + f'downsample.{first}.weight'] = _t(gen, c, c_in, 1, 1)
                sd.update(_bn(gen, p + f'downsample.{first + 1}.', c))
        c_in = c
    if mask_channels:
        sd['mask_token'] = _t(gen, 1, mask_channels, 1, 1)
    return sd


def convert(capsys, tmp_path: Path, sd: dict, *flags, form: str = 'backbone-only'):
    """Run the converter in-process; return (exit code, stderr, written checkpoint or None)."""
    src = save_official(sd, tmp_path / 'official.pth', form)
    out = tmp_path / 'out.pth'
    if out.exists():
        out.unlink()
    code, _, stderr = run_inproc(convert_tool, capsys, src, out, *flags)
    return code, stderr, (load(out) if out.exists() else None)


# --------------------------------------------------------------------------------------------
# Argument misuse: argparse's usage error, exit code 2, the flag named
# --------------------------------------------------------------------------------------------
MISUSE = [
    (['--arch', 'vit', '--depth', '18'], '--depth is for --arch resnet'),
    (['--arch', 'resnet', '--num-heads', '2'], '--num-heads, --img-size and --vit-layout'),
    (['--arch', 'convnext', '--img-size', '64'], '--num-heads, --img-size and --vit-layout'),
    (['--arch', 'resnet', '--vit-layout', 'plain'], '--num-heads, --img-size and --vit-layout'),
    (['--arch', 'resnet', '--arch-name', 'base'], '--arch-name is for --arch vit / convnext'),
    (['--arch', 'vit', '--mask-layer', '1'], '--mask-layer needs --keep-mask-token'),
    (['--arch', 'swin'], "invalid choice: 'swin'"),
    ([], 'the following arguments are required: --arch'),
    (['--arch', 'resnet', '--depth', 'fifty'], "invalid int value: 'fifty'"),
]


@pytest.mark.parametrize('flags,message', MISUSE,
                         ids=[' '.join(f) or 'no-arch' for f, _ in MISUSE])
def test_argument_misuse_is_a_usage_error(flags, message, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        convert_tool.main([str(tmp_path / 'in.pth'), str(tmp_path / 'out.pth'), *flags])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert 'usage: convert_official.py' in err and message in err
    assert not (tmp_path / 'out.pth').exists()


def test_argument_misuse_exit_code_from_the_command_line(tmp_path):
    code, _, stderr = run_cli(CONVERT, tmp_path / 'in.pth', tmp_path / 'out.pth', '--arch',
                              'vit', '--depth', '50')
    assert code == 2 and '--depth is for --arch resnet' in stderr


def test_missing_input_file_exits_1_naming_it(tmp_path, capsys):
    missing = tmp_path / 'nope.pth'
    code, _, stderr = run_inproc(convert_tool, capsys, missing, tmp_path / 'out.pth', '--arch',
                                 'resnet')
    assert code == 1 and f'checkpoint not found: {missing}' in stderr
    assert not (tmp_path / 'out.pth').exists()


# --------------------------------------------------------------------------------------------
# --img-size
# --------------------------------------------------------------------------------------------
def test_img_size_cross_checks_the_position_embedding(tmp_path, capsys):
    code, stderr, ckpt = convert(capsys, tmp_path, official_vit(), '--arch', 'vit',
                                 '--img-size', '64')
    assert code == 0, stderr
    assert ckpt['meta']['backbone_cfg']['img_size'] == 64
    code, stderr, ckpt = convert(capsys, tmp_path, official_vit(), '--arch', 'vit',
                                 '--img-size', '96')
    assert code == 1 and ckpt is None
    assert '--img-size 96 disagrees with the checkpoint (64)' in stderr


def test_img_size_read_from_the_relative_position_table(tmp_path, capsys):
    """No absolute position embedding: the per-layer table ((2g - 1)^2 + 3 rows) gives g."""
    sd = official_vit(img=96)  # 6 x 6 patches
    del sd['pos_embed']
    code, stderr, ckpt = convert(capsys, tmp_path, sd, '--arch', 'vit')
    assert code == 0, stderr
    cfg = ckpt['meta']['backbone_cfg']
    assert cfg['img_size'] == 96 and cfg['use_abs_pos_emb'] is False
    assert_loads_exactly(BEiTViT(arch=TINY_VIT, img_size=96, patch_size=16,
                                 use_abs_pos_emb=False, use_rel_pos_bias=True,
                                 layer_scale_init_value=0.1, final_norm=True,
                                 out_type='featmap'), strip(ckpt['state_dict']))
    code, stderr, _ = convert(capsys, tmp_path, sd, '--arch', 'vit', '--img-size', '64')
    assert code == 1 and '--img-size 64 disagrees with the checkpoint (96)' in stderr


def test_img_size_fills_in_what_the_weights_cannot_tell(tmp_path, capsys):
    """Neither position embedding nor relative table: the size comes from --img-size only."""
    sd = official_vit(use_window=False)
    del sd['pos_embed']
    code, stderr, ckpt = convert(capsys, tmp_path, sd, '--arch', 'vit', '--num-heads', '2',
                                 '--img-size', '128')
    assert code == 0, stderr
    assert ckpt['meta']['backbone_cfg']['img_size'] == 128


# --------------------------------------------------------------------------------------------
# --arch-name
# --------------------------------------------------------------------------------------------
def test_vit_arch_name_gives_the_heads_of_a_vit_without_relative_bias(tmp_path, capsys):
    sd = official_vit(dims=192, layers=12, heads=3, ffn=768, use_window=False)
    for name in ('deit-tiny', 'deit-t'):  # the official short alias too
        code, stderr, ckpt = convert(capsys, tmp_path, sd, '--arch', 'vit', '--vit-layout',
                                     'plain', '--arch-name', name)
        assert code == 0, stderr
        arch = dict(embed_dims=192, num_layers=12, num_heads=3, feedforward_channels=768)
        assert ckpt['meta']['backbone_cfg']['arch'] == arch
        assert_loads_exactly(VisionTransformer(arch=arch, img_size=64, patch_size=16,
                                               layer_scale_init_value=0.1, final_norm=True,
                                               out_type='featmap'),
                             strip(ckpt['state_dict']))


def test_vit_arch_name_mismatch_and_unknown_name(tmp_path, capsys):
    code, stderr, ckpt = convert(capsys, tmp_path, official_vit(), '--arch', 'vit',
                                 '--arch-name', 'small')
    assert code == 1 and ckpt is None
    assert '--arch-name small is (embed, layers, heads, ffn) = (768, 8, 8, 2304), the ' \
           'checkpoint has (64, 2, 2, 128)' in stderr
    code, stderr, _ = convert(capsys, tmp_path, official_vit(), '--arch', 'vit',
                              '--arch-name', 'huge')
    assert code == 1 and "unknown official ViT arch 'huge'" in stderr and 'deit-small' in stderr


def test_convnext_arch_name_is_cross_checked(tmp_path, capsys):
    atto = official_convnext(depths=(2, 2, 6, 2), channels=(40, 80, 160, 320))
    code, stderr, ckpt = convert(capsys, tmp_path, atto, '--arch', 'convnext', '--arch-name',
                                 'atto')
    assert code == 0, stderr
    assert ckpt['meta']['backbone_cfg']['arch'] == 'atto'
    assert_loads_exactly(ConvNeXt(arch='atto', out_indices=(3, ), gap_before_final_norm=False),
                         strip(ckpt['state_dict']))
    code, stderr, ckpt = convert(capsys, tmp_path, atto, '--arch', 'convnext', '--arch-name',
                                 'tiny')
    assert code == 1 and ckpt is None
    assert '--arch-name tiny disagrees with the checkpoint (depths [2, 2, 6, 2], channels ' \
           '[40, 80, 160, 320])' in stderr


# --------------------------------------------------------------------------------------------
# ResNet stems and shortcuts from the weights
# --------------------------------------------------------------------------------------------
RESNET_VARIANTS = [
    (dict(deep_stem=True), dict(deep_stem=True)),
    (dict(avg_down=True), dict(avg_down=True)),
    (dict(stem=32), dict(stem_channels=32)),
    (dict(deep_stem=True, avg_down=True, stem=32, base=32),
     dict(deep_stem=True, avg_down=True, stem_channels=32, base_channels=32)),
]


@pytest.mark.parametrize('official,expected', RESNET_VARIANTS,
                         ids=['deep_stem', 'avg_down', 'stem32', 'all'])
def test_resnet_stem_and_shortcut_are_read_from_the_weights(official, expected, tmp_path,
                                                            capsys):
    sd = official_resnet18(**official)
    code, stderr, ckpt = convert(capsys, tmp_path, sd, '--arch', 'resnet', '--depth', '18',
                                 form='full')
    assert code == 0, stderr
    cfg = ckpt['meta']['backbone_cfg']
    assert cfg == dict(type='ResNet', depth=18, in_channels=3, out_indices=(3, ),
                       style='pytorch', **expected)
    state = strip(ckpt['state_dict'])
    assert_loads_exactly(ResNet(depth=18, out_indices=(3, ), **expected), state)
    for key, value in sd.items():
        assert torch.equal(state[key], value), key


def test_plain_resnet_is_not_taken_for_a_variant(tmp_path, capsys):
    code, stderr, ckpt = convert(capsys, tmp_path, official_resnet18(), '--arch', 'resnet')
    assert code == 0, stderr
    cfg = ckpt['meta']['backbone_cfg']
    assert not {'deep_stem', 'avg_down', 'stem_channels', 'base_channels'} & set(cfg)


# --------------------------------------------------------------------------------------------
# --mask-layer and the mask-token channel check
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize('stem,channels,expected', [
    (32, 32, 0),    # only the stem output has 32 channels
    (64, 64, 1),    # stem and layer1 both 64: the deepest (layer1 output, mask_layer 1)
    (64, 128, 2),
    (64, 256, 3),   # the official setting
])
def test_resnet_mask_layer_inferred_from_the_token_width(stem, channels, expected, tmp_path,
                                                         capsys):
    sd = official_resnet18(stem=stem, mask_channels=channels)
    code, stderr, ckpt = convert(capsys, tmp_path, sd, '--arch', 'resnet', '--keep-mask-token')
    assert code == 0, stderr
    assert ckpt['meta']['a2mim_backbone_cfg']['mask_layer'] == expected
    model = A2MIMResNet(depth=18, mask_layer=expected, out_indices=(3, ),
                        **({} if stem == 64 else dict(stem_channels=stem)))
    assert_loads_exactly(model, strip(ckpt['state_dict']))


def test_explicit_mask_layer(tmp_path, capsys):
    vit = official_vit()
    code, stderr, ckpt = convert(capsys, tmp_path, vit, '--arch', 'vit', '--keep-mask-token',
                                 '--mask-layer', '1')
    assert code == 0, stderr
    assert ckpt['meta']['a2mim_backbone_cfg']['mask_layer'] == 1
    model = A2MIMViT(arch=TINY_VIT, img_size=64, patch_size=16, mask_layer=1)
    assert_loads_exactly(model, strip(ckpt['state_dict']))
    # a CNN mask_layer whose width is not the token's: refused, naming the flag and the fix
    sd = official_resnet18(mask_channels=256)
    code, stderr, ckpt = convert(capsys, tmp_path, sd, '--arch', 'resnet', '--keep-mask-token',
                                 '--mask-layer', '2')
    assert code == 1 and ckpt is None
    assert '--mask-layer 2' in stderr and '128 channels' in stderr and '256' in stderr
    assert 'use --mask-layer 3 or leave it out' in stderr
    code, stderr, _ = convert(capsys, tmp_path, sd, '--arch', 'resnet', '--keep-mask-token',
                              '--mask-layer', '4')
    assert code == 1 and 'mask_layer must be in [0, 3]' in stderr


@pytest.mark.parametrize('arch', ['resnet', 'convnext'])
def test_mask_token_width_matching_no_stage_is_an_error(arch, tmp_path, capsys):
    if arch == 'resnet':
        sd, points = official_resnet18(mask_channels=100), '[64, 64, 128, 256]'
    else:
        sd = official_convnext()
        sd['mask_token'] = torch.zeros(1, 100, 1, 1)
        sd['mask_gamma'] = torch.zeros(1, 100, 1, 1)
        points = '[8, 16, 32, 64]'
    code, stderr, ckpt = convert(capsys, tmp_path, sd, '--arch', arch, '--keep-mask-token')
    assert code == 1 and ckpt is None
    assert 'mask_token has 100 channels, but the injection points of this ' in stderr
    assert points in stderr
    # without --keep-mask-token the token is dropped and the backbone converts
    code, stderr, ckpt = convert(capsys, tmp_path, sd, '--arch', arch)
    assert code == 0, stderr
    assert 'mask_token' in ckpt['meta']['dropped_mask_params']


# --------------------------------------------------------------------------------------------
# raw_state_dict and load_checkpoint_weights_only
# --------------------------------------------------------------------------------------------
def test_raw_state_dict_forms():
    a, b = torch.ones(2), torch.zeros(3)
    assert W.raw_state_dict({'state_dict': {'x': a}, 'meta': {}}) == {'x': a}
    assert W.raw_state_dict({'model': {'x': a, 'y': b}, 'epoch': 3}) == {'x': a, 'y': b}
    assert W.raw_state_dict({'x': a}) == {'x': a}  # a bare state dict
    # 'state_dict' wins over 'model' when both are present
    assert W.raw_state_dict({'state_dict': {'x': a}, 'model': {'y': b}}) == {'x': a}
    # DistributedDataParallel's prefix is stripped once, from the front only
    stripped = W.raw_state_dict({'model': {'module.backbone.x': a, 'backbone.module.y': b}})
    assert stripped == {'backbone.x': a, 'backbone.module.y': b}


@pytest.mark.parametrize('ckpt,message', [
    ({}, 'empty state dict'),
    ({'state_dict': {}}, 'empty state dict'),
    ({'model': {}}, 'empty state dict'),
    ({'state_dict': {'x': torch.ones(1), 'step': 3}}, "entry 'step' of the state dict is a int"),
    ({'epoch': 3, 'x': torch.ones(1)}, "entry 'epoch' of the state dict is a int"),
    ({'model': {'x': [torch.ones(1)]}}, "entry 'x' of the state dict is a list"),
    ({'state_dict': {'module.x': torch.ones(1), 'x': torch.zeros(1)}},
     "both 'module.x' and 'x'"),
], ids=['empty', 'empty-state_dict', 'empty-model', 'int-entry', 'bare-int-entry',
        'list-entry', 'module-collision'])
def test_raw_state_dict_refuses_empty_or_non_tensor(ckpt, message):
    with pytest.raises(W.WeightToolError, match=message.replace('(', r'\(')):
        W.raw_state_dict(ckpt)


def test_ddp_and_model_key_checkpoints_convert_like_the_plain_one(tmp_path, capsys):
    sd = official_resnet18()
    _, _, reference = convert(capsys, tmp_path, sd, '--arch', 'resnet')
    for name, wrapped in (('ddp', {'state_dict': {'module.backbone.' + k: v
                                                  for k, v in sd.items()}}),
                          ('model', {'model': dict(sd), 'epoch': 300})):
        src = tmp_path / f'{name}.pth'
        torch.save(wrapped, src)
        out = tmp_path / f'{name}_out.pth'
        code, _, stderr = run_inproc(convert_tool, capsys, src, out, '--arch', 'resnet')
        assert code == 0, stderr
        state = load(out)['state_dict']
        assert sorted(state) == sorted(reference['state_dict'])
        for key, value in reference['state_dict'].items():
            assert torch.equal(state[key], value), key


def test_load_checkpoint_weights_only_missing_or_not_a_dict(tmp_path):
    with pytest.raises(W.WeightToolError, match='checkpoint not found: .*nope.pth'):
        W.load_checkpoint_weights_only(str(tmp_path / 'nope.pth'))
    with pytest.raises(W.WeightToolError, match='checkpoint not found'):
        W.load_checkpoint_weights_only(str(tmp_path))  # a folder
    for name, obj, kind in (('list', [torch.ones(1)], 'list'),
                            ('tensor', torch.ones(2), 'Tensor')):
        path = tmp_path / f'{name}.pth'
        torch.save(obj, path)
        with pytest.raises(W.WeightToolError, match=f'does not hold a dict \\(got {kind}\\)'):
            W.load_checkpoint_weights_only(str(path))
    garbage = tmp_path / 'garbage.pth'
    garbage.write_bytes(b'not a checkpoint')
    with pytest.raises(W.WeightToolError, match='cannot read .*garbage.pth'):
        W.load_checkpoint_weights_only(str(garbage))
    good = tmp_path / 'good.pth'
    torch.save({'state_dict': {'x': torch.arange(3)}}, good)
    assert torch.equal(W.load_checkpoint_weights_only(str(good))['state_dict']['x'],
                       torch.arange(3))


def test_not_a_dict_through_the_tool(tmp_path, capsys):
    src = tmp_path / 'list.pth'
    torch.save([torch.ones(1)], src)
    code, _, stderr = run_inproc(convert_tool, capsys, src, tmp_path / 'o.pth', '--arch', 'vit')
    assert code == 1 and 'does not hold a dict (got list)' in stderr
