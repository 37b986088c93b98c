"""tools/export_backbone.py --target timm / --target torchvision.

Each export starts from a checkpoint in the layout of an A2MIM pre-training checkpoint
(``state_dict`` with ``backbone.*`` including ``mask_token`` / ``mask_gamma``, ``neck.*``,
``head.*``; ``meta['cfg']`` the pre-training config) whose backbone weights are random, so that
every tensor matters (a 1e-6 layer scale would hide a wrong block mapping). The test then
builds the target model itself from timm / torchvision, loads the exported weights with
``strict=True`` and compares its features with the stock MMPretrain backbone's, which it also
builds itself and loads from the source checkpoint.
"""
import dataclasses
import importlib.util
import re
import subprocess
import sys
from pathlib import Path

import pytest
import timm
import torch
import torchvision
from mmengine.config import Config
from mmpretrain.models.backbones import (BEiTViT, ConvNeXt, ResNet, SwinTransformer,
                                         VisionTransformer)
from mmpretrain.registry import MODELS

import a2mim_plugin  # noqa: F401
from a2mim_plugin.utils import weights as W
from a2mim_plugin.utils.weights import targets as T

REPO = Path(__file__).resolve().parents[1]
EXPORT = REPO / 'tools' / 'export_backbone.py'
TINY_VIT = dict(embed_dims=64, num_layers=2, num_heads=2, feedforward_channels=128)
TINY_SWIN = dict(embed_dims=16, depths=[2, 2, 2, 1], num_heads=[1, 1, 2, 2])
SWIN_CFG = dict(type='SwinTransformer', arch=TINY_SWIN, img_size=64, out_indices=(3, ),
                stage_cfgs=dict(block_cfgs=dict(window_size=2)))
CONVNEXT_V2 = dict(type='ConvNeXt', arch='atto', use_grn=True, layer_scale_init_value=0.,
                   out_indices=(3, ), gap_before_final_norm=False)
# name: (model.backbone, model.mask_token, decoder (in_channels, encoder_stride))
PRETRAIN = {
    'resnet': (dict(type='A2MIMResNet', depth=18, mask_layer=3, out_indices=(3, ),
                    mask_init=1e-6), None, (512, 32)),
    'convnext': (dict(type='A2MIMConvNeXt', arch='atto', mask_layer=3, out_indices=(3, ),
                      mask_init=1e-6), None, (320, 32)),
    'convnextv2': (CONVNEXT_V2, dict(at='stages.2', mask_init=1e-6), (320, 32)),
    'vit': (dict(type='A2MIMPlainViT', arch=TINY_VIT, img_size=64, patch_size=16), None,
            (64, 16)),
    # the A2MIM ViT preset: BEiTViT with relative position bias and layer scale
    'beit': (dict(type='A2MIMViT', arch=TINY_VIT, img_size=64, patch_size=16), None, (64, 16)),
    'swin': (SWIN_CFG, dict(at='patch_embed', on='output', mask_init=1e-6), (128, 32)),
}


@pytest.fixture(autouse=True)
def single_intra_op_thread():
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def _load_tool(path: Path):
    spec = importlib.util.spec_from_file_location(f'_tool_{path.stem}_targets', path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


export_tool = _load_tool(EXPORT)


def run_inproc(capsys, *args):
    capsys.readouterr()
    code = export_tool.main([str(a) for a in args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def load(path) -> dict:
    return torch.load(path, map_location='cpu', weights_only=True)


def randomized(state: dict, seed: int = 1) -> dict:
    """Every floating backbone tensor moved by noise of its own spread (variances stay >0)."""
    gen = torch.Generator().manual_seed(seed)
    out = dict(state)
    for key, value in state.items():
        if not key.startswith('backbone.') or not value.is_floating_point():
            continue
        spread = value.std() if value.numel() > 1 and value.std() > 0 else torch.tensor(0.2)
        new = value + 0.5 * spread * torch.randn(value.shape, generator=gen)
        out[key] = new.abs() + 0.5 if key.endswith('running_var') else new
    return out


@pytest.fixture(scope='module')
def checkpoint(tmp_path_factory):
    """``checkpoint(name)`` -> path of a pre-training checkpoint with random backbone weights."""
    cache = {}

    def get(name: str) -> Path:
        if name not in cache:
            backbone, mask_token, (channels, stride) = PRETRAIN[name]
            cfg = dict(model=dict(
                type='A2MIM', backbone=backbone, mask_token=mask_token,
                neck=dict(type='A2MIMLinearDecoder', in_channels=channels,
                          encoder_stride=stride),
                head=dict(type='A2MIMHead', loss=dict(type='ElementwiseL1Loss'))))
            torch.manual_seed(0)
            model = MODELS.build(cfg['model'])
            state = randomized(model.state_dict())
            assert 'backbone.mask_token' in state and 'neck.decoder.0.weight' in state
            path = tmp_path_factory.mktemp(f'pretrain_{name}') / 'iter_2.pth'
            torch.save(dict(meta=dict(cfg=Config(cfg).pretty_text, iter=2),
                            state_dict=state), path)
            cache[name] = path
        return cache[name]

    return get


def plain_weights(ckpt_path: Path) -> dict:
    state = load(ckpt_path)['state_dict']
    return {k[len('backbone.'):]: v for k, v in state.items()
            if k.startswith('backbone.') and k not in ('backbone.mask_token',
                                                        'backbone.mask_gamma')}


def stock_backbone(name: str, ckpt_path: Path) -> torch.nn.Module:
    """The MMPretrain backbone the pre-training weights belong to, written out here."""
    model = {
        'resnet': lambda: ResNet(depth=18, out_indices=(3, )),
        'convnext': lambda: ConvNeXt(arch='atto', out_indices=(3, ),
                                     gap_before_final_norm=False),
        'convnextv2': lambda: ConvNeXt(arch='atto', use_grn=True, layer_scale_init_value=0.,
                                       out_indices=(3, ), gap_before_final_norm=False),
        'vit': lambda: VisionTransformer(arch=TINY_VIT, img_size=64, patch_size=16,
                                         final_norm=True, out_type='featmap'),
        'beit': lambda: BEiTViT(arch=TINY_VIT, img_size=64, patch_size=16, use_abs_pos_emb=True,
                                use_rel_pos_bias=True, layer_scale_init_value=0.1,
                                final_norm=True, out_type='featmap'),
        'swin': lambda: SwinTransformer(arch=TINY_SWIN, img_size=64, out_indices=(3, ),
                                        stage_cfgs=dict(block_cfgs=dict(window_size=2))),
    }[name]()
    model.load_state_dict(plain_weights(ckpt_path), strict=True)
    model.eval()
    return model


# The target models as a user builds them from the libraries, and the features to compare:
# (target builder, target features, MMPretrain features of the same thing).
def _swin_timm():
    return timm.create_model('swin_tiny_patch4_window7_224', pretrained=False, img_size=64,
                             window_size=2, embed_dim=16, depths=(2, 2, 2, 1),
                             num_heads=(1, 1, 2, 2), num_classes=0)


def _torchvision_resnet18():
    model = torchvision.models.resnet18(weights=None)
    model.fc = torch.nn.Identity()
    return model


TARGETS = {
    ('resnet', 'timm'): (
        lambda: timm.create_model('resnet18', pretrained=False, num_classes=0),
        lambda m, x: m.forward_features(x), lambda p, x: p(x)[-1]),
    ('resnet', 'torchvision'): (
        _torchvision_resnet18, lambda m, x: m(x), lambda p, x: p(x)[-1].mean((2, 3))),
    ('convnext', 'timm'): (
        lambda: timm.create_model('convnext_atto', pretrained=False, num_classes=0),
        lambda m, x: m.head.norm(m.forward_features(x)), lambda p, x: p(x)[-1]),
    ('convnextv2', 'timm'): (
        lambda: timm.create_model('convnextv2_atto', pretrained=False, num_classes=0),
        lambda m, x: m.head.norm(m.forward_features(x)), lambda p, x: p(x)[-1]),
    ('vit', 'timm'): (
        lambda: timm.create_model('vit_tiny_patch16_224', pretrained=False, img_size=64,
                                  embed_dim=64, depth=2, num_heads=2, mlp_ratio=2.0,
                                  num_classes=0),
        lambda m, x: m.forward_features(x)[:, 1:].reshape(2, 4, 4, 64).permute(0, 3, 1, 2),
        lambda p, x: p(x)[-1]),
    ('beit', 'timm'): (
        lambda: timm.create_model('beit_base_patch16_224', pretrained=False, img_size=64,
                                  embed_dim=64, depth=2, num_heads=2, mlp_ratio=2.0,
                                  use_abs_pos_emb=True, num_classes=0, global_pool=''),
        lambda m, x: m.forward_features(x)[:, 1:].reshape(2, 4, 4, 64).permute(0, 3, 1, 2),
        lambda p, x: p(x)[-1]),
    ('swin', 'timm'): (
        _swin_timm, lambda m, x: m.forward_features(x).permute(0, 3, 1, 2),
        lambda p, x: p(x)[-1]),
}


@pytest.mark.parametrize('name, library', list(TARGETS))
def test_export_loads_strictly_into_the_library_model_with_equal_features(
        name, library, checkpoint, tmp_path, capsys):
    src = checkpoint(name)
    out = tmp_path / 'out' / f'{name}_{library}.pth'
    code, stdout, stderr = run_inproc(capsys, src, out, '--target', library)
    assert code == 0, stderr
    assert [p.name for p in out.parent.iterdir()] == [out.name]  # no temp file left
    exported = load(out)
    meta = exported['meta']
    check = meta['feature_check']
    assert check['weights_max_abs_diff_float64'] <= 1e-6 * check['weights_max_abs_feature']
    assert check['random_max_abs_diff_float64'] <= 1e-6 * check['random_max_abs_feature']
    assert meta['target'] == library and meta['mask_params'] == 'dropped'
    assert meta['checked_against'].startswith(f'{library}.models.')
    assert not any(k.startswith('backbone.') or 'mask_' in k for k in exported['state_dict'])
    assert meta['load_with'] in stdout

    build, target_features, plain_features = TARGETS[(name, library)]
    target = build()
    target.load_state_dict(exported['state_dict'], strict=True)
    target.eval()
    plain = stock_backbone(name, src)
    x = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        expected = plain_features(plain, x)
        got = target_features(target, x)
        torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-5)
        # the same in float64: equal up to rounding, so no weight is mapped loosely
        expected64 = plain_features(plain.double(), x.double())
        got64 = target_features(target.double(), x.double())
    assert (got64 - expected64).abs().max() <= 1e-9 * expected64.abs().max()
    # the exported snippet rebuilds the same model (name and kwargs from the meta)
    spec = meta['target_model']
    if library == 'timm':
        again = timm.create_model(spec['name'], pretrained=False, **spec['kwargs'])
        again.load_state_dict(exported['state_dict'], strict=True)


def test_timm_checkpoint_path_loads_the_exported_file(checkpoint, tmp_path, capsys):
    """timm's own loader reads the file: create_model(..., checkpoint_path=OUT)."""
    out = tmp_path / 'r18_timm.pth'
    assert run_inproc(capsys, checkpoint('resnet'), out, '--target', 'timm')[0] == 0
    model = timm.create_model('resnet18', pretrained=False, num_classes=0,
                              checkpoint_path=str(out))
    exported = load(out)['state_dict']
    for key, value in model.state_dict().items():
        assert torch.equal(value, exported[key]), key


def test_swin_merging_order_is_a_permutation_of_the_neighbours():
    """timm[t] = mmpretrain[p[t]]: channel c of neighbour (dy, dx) sits at c*4 + 2*dy + dx in
    MMPretrain's unfold order and at dx*2C + dy*C + c in timm's."""
    order = T.merging_order(3)
    assert sorted(order.tolist()) == list(range(12))
    assert order.tolist() == [0, 4, 8, 2, 6, 10, 1, 5, 9, 3, 7, 11]


def test_a_wrong_mapping_exits_1_and_writes_nothing(checkpoint, tmp_path, capsys,
                                                   monkeypatch):
    """Swin's merging in MMPretrain's own order loads strictly (same shapes) but computes
    something else: the feature check refuses it."""
    monkeypatch.setattr(T, 'merging_order', lambda channels: torch.arange(4 * channels))
    out = tmp_path / 'swin.pth'
    code, _, stderr = run_inproc(capsys, checkpoint('swin'), out, '--target', 'timm')
    assert code == 1
    assert 'features of timm swin_tiny_patch4_window7_224 differ' in stderr
    assert 'nothing written' in stderr
    assert not out.exists() and list(tmp_path.iterdir()) == []


def test_the_random_weight_check_catches_what_trained_values_hide(tmp_path, capsys,
                                                                  monkeypatch):
    """In a fresh A2MIMConvNeXt every layer scale is 1e-6, so swapping two blocks' gammas
    leaves the exported weights (and features) unchanged; the check with random weights of the
    same shapes refuses the mapping."""
    backbone, _, (channels, stride) = PRETRAIN['convnext']
    cfg = dict(model=dict(type='A2MIM', backbone=backbone,
                          neck=dict(type='A2MIMLinearDecoder', in_channels=channels,
                                    encoder_stride=stride),
                          head=dict(type='A2MIMHead', loss=dict(type='ElementwiseL1Loss'))))
    model = MODELS.build(cfg['model'])
    model.init_weights()
    src = tmp_path / 'fresh.pth'
    torch.save(dict(meta=dict(cfg=Config(cfg).pretty_text), state_dict=model.state_dict()), src)
    apply_rules = T.apply_rules

    def swapped(state, rules, what):
        out = apply_rules(state, rules, what)
        a, b = 'stages.0.blocks.0.gamma', 'stages.0.blocks.1.gamma'
        out[a], out[b] = out[b], out[a]
        return out

    monkeypatch.setattr(T, 'apply_rules', swapped)
    out = tmp_path / 'out.pth'
    code, _, stderr = run_inproc(capsys, src, out, '--target', 'timm')
    assert code == 1 and '(random: max abs difference' in stderr, stderr
    assert not out.exists()


def test_a_wrong_model_name_exits_1_with_the_keys(checkpoint, tmp_path, capsys, monkeypatch):
    original = T.CONVERTERS['ResNet']
    monkeypatch.setitem(T.CONVERTERS, 'ResNet', lambda model, library: dataclasses.replace(
        original(model, library), name='resnet34'))
    out = tmp_path / 'r18_as_r34.pth'
    code, _, stderr = run_inproc(capsys, checkpoint('resnet'), out, '--target', 'torchvision')
    assert code == 1
    assert 'do not match torchvision resnet34' in stderr and 'layer3.5.conv1.weight' in stderr
    assert not out.exists() and list(tmp_path.iterdir()) == []


@pytest.mark.parametrize('backbone, library, message', [
    (dict(type='DeiT3', arch=TINY_VIT, img_size=64, patch_size=16), 'timm',
     r'no exact mapping of mmpretrain\.models\.backbones\.deit3\.DeiT3 to timm'),
    (dict(type='A2MIMViT', arch=TINY_VIT, img_size=64, patch_size=16), 'torchvision',
     r'no exact mapping of .*BEiTViT to torchvision'),
    (dict(type='A2MIMConvNeXt', arch='atto', mask_layer=3, out_indices=(3, )), 'torchvision',
     r'no exact mapping of .*ConvNeXt to torchvision: exported for torchvision are ResNet'),
    (dict(SWIN_CFG, out_indices=(0, 1, 2, 3)), 'timm',
     r'SwinTransformer with out_indices=\(0, 1, 2, 3\).*one norm, after the last stage'),
    (dict(type='A2MIMResNet', depth=18, mask_layer=3, style='caffe'), 'torchvision',
     r"style='caffe'.*no exact counterpart in torchvision"),
    (dict(type='ResNetV1d', depth=18), 'timm', r'no exact mapping of .*ResNetV1d'),
])
def test_families_and_options_without_an_exact_mapping_are_refused(
        backbone, library, message, tmp_path, capsys):
    cfg = dict(model=dict(type='A2MIM', backbone=backbone))
    weights = W.build_pretrain_backbone(backbone).state_dict()
    src = tmp_path / 'src.pth'
    torch.save(dict(meta=dict(cfg=Config(cfg).pretty_text),
                    state_dict={'backbone.' + k: v for k, v in weights.items()}), src)
    out = tmp_path / 'out.pth'
    code, _, stderr = run_inproc(capsys, src, out, '--target', library)
    assert code == 1, stderr
    assert re.search(message, ' '.join(stderr.split())), stderr
    assert not out.exists()


def test_keep_mask_token_is_a_usage_error_for_other_libraries(checkpoint, tmp_path):
    proc = subprocess.run([sys.executable, str(EXPORT), str(checkpoint('vit')),
                           str(tmp_path / 'o.pth'), '--target', 'timm', '--keep-mask-token'],
                          cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2
    assert '--keep-mask-token needs an OpenMMLab target' in proc.stderr
    assert not (tmp_path / 'o.pth').exists()
