"""A2MIM pre-training -> MMDetection Mask R-CNN, through MMDetection's own Runner on CPU.

Per backbone family (ResNet-50 C4 and FPN, BEiT ViT, ConvNeXt) a 2-iteration A2MIM
pre-training writes a runner checkpoint, ``tools/export_backbone.py`` reduces it to the
backbone, and the real det config (tiny sizes) loads it: every backbone weight equals the
checkpoint's, 2 training iterations run and one validation pass computes the COCO bbox and
segm metrics on a tiny COCO-format set of real photos. A wrong prefix or a missing key stops
the run with StrictPretrained's error.
"""
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Dict

import pytest
import torch
from mmengine.hooks import Hook
from mmengine.registry import init_default_scope
from mmengine.runner import Runner
from mmdet.registry import MODELS

from det_helpers import REPO_ROOT, backbone_state, tiny_det_cfg

PRETRAIN_FAMILY = {'c4': 'resnet', 'fpn': 'resnet', 'vit': 'vit', 'convnext': 'convnext'}
MASK_ONLY = re.compile(r'(^|\.)mask_(token|gamma)$')


def expected_weights(family: str, ckpt: Path) -> Dict[str, torch.Tensor]:
    """Detector state-dict key -> checkpoint tensor, for every tensor the config must load."""
    expected = {}
    for key, value in backbone_state(ckpt).items():
        if MASK_ONLY.search(key) or (family == 'vit' and key.startswith('ln1.')):
            continue  # pre-training only: mask token / gamma; the ViT's unused final norm
        if family == 'c4' and key.startswith('layer4.'):
            expected['roi_head.shared_head.' + key] = value  # res5 is the shared RoI head
        else:
            expected['backbone.' + key] = value
    return expected


def new_by_design(family: str, key: str) -> bool:
    """Detector keys of the backbone / shared head that no pre-training checkpoint holds."""
    if family == 'c4':
        return key.startswith('roi_head.shared_head.norm.')
    if family == 'convnext':
        return re.match(r'backbone\.norm[012]\.', key) is not None
    return False


def assert_loaded(family: str, state: Dict[str, torch.Tensor], ckpt: Path) -> None:
    expected = expected_weights(family, ckpt)
    prefixes = ('backbone.', 'roi_head.shared_head.') if family == 'c4' else ('backbone.', )
    owned = {k for k in state if k.startswith(prefixes) and not new_by_design(family, k)}
    assert owned == set(expected), (sorted(owned ^ set(expected))[:10])
    different = [k for k, v in expected.items() if not torch.equal(state[k], v)]
    assert not different, f'{len(different)} tensors differ from the checkpoint: ' \
                          f'{different[:10]}'


class _Record(Hook):
    """Keep the weights right after initialisation and the validation metrics."""

    def __init__(self) -> None:
        self.state = None
        self.metrics = None

    def before_train(self, runner) -> None:
        self.state = {k: v.detach().clone() for k, v in runner.model.state_dict().items()}

    def after_val_epoch(self, runner, metrics=None) -> None:
        self.metrics = metrics


@pytest.mark.parametrize('family', ['c4', 'fpn', 'vit', 'convnext'])
@pytest.mark.parametrize('kind', ['full', 'exported'])
def test_config_loads_every_backbone_weight(family, kind, a2mim_checkpoint, tiny_coco,
                                            tmp_path):
    """Both the pre-training checkpoint and the exported backbone load completely."""
    ckpt = a2mim_checkpoint(PRETRAIN_FAMILY[family])[kind]
    cfg = tiny_det_cfg(family, ckpt, tiny_coco, tmp_path)
    init_default_scope('mmdet')
    model = MODELS.build(cfg.model)
    model.init_weights()
    assert_loaded(family, model.state_dict(), ckpt)


@pytest.mark.parametrize('family,kind', [('c4', 'full'), ('fpn', 'exported'), ('vit', 'full'),
                                         ('convnext', 'exported')])
def test_train_and_coco_eval(family, kind, a2mim_checkpoint, tiny_coco, tmp_path):
    """2 training iterations and a COCO bbox + segm evaluation with MMDetection's Runner."""
    ckpt = a2mim_checkpoint(PRETRAIN_FAMILY[family])[kind]
    runner = Runner.from_cfg(tiny_det_cfg(family, ckpt, tiny_coco, tmp_path))
    record = _Record()
    runner.register_hook(record, priority='VERY_HIGH')
    runner.train()

    assert_loaded(family, record.state, ckpt)
    assert runner.iter == 2
    # wiring only: a 2-iteration model scores anything; test_det_metrics.py checks that the
    # same evaluator gives the known values for predictions of known quality
    for metric in ('coco/bbox_mAP', 'coco/segm_mAP', 'coco/bbox_mAP_50', 'coco/segm_mAP_50'):
        assert metric in record.metrics, sorted(record.metrics)
        assert 0. <= record.metrics[metric] <= 1.
    # the weights were trained, not just loaded
    moved = [k for k, v in runner.model.state_dict().items()
             if k.startswith('backbone.') and v.is_floating_point()
             and not torch.equal(v, record.state[k])]
    assert moved


def test_wrong_prefix_stops_the_run(a2mim_checkpoint, tiny_coco, tmp_path):
    """A prefix that no checkpoint key has: the error says so, lists the checkpoint's own
    prefixes and proposes the one under which the backbone's keys are found."""
    ckpt = a2mim_checkpoint('resnet')['exported']
    cfg = tiny_det_cfg('fpn', ckpt, tiny_coco, tmp_path, prefix='encoder.')
    runner = Runner.from_cfg(cfg)
    with pytest.raises(RuntimeError) as error:
        runner.train()
    assert runner.iter == 0
    message = str(error.value)
    keys = list(torch.load(ckpt, map_location='cpu')['state_dict'])
    assert f"no key of {ckpt} starts with 'encoder.'" in message
    assert f"its keys start with 'backbone.' ({len(keys)})" in message  # an export: only these
    module_keys = list(runner.model.backbone.state_dict())
    found = sum(f'backbone.{k}' in keys for k in module_keys[:200])  # the hint looks at 200
    assert found == min(200, len(module_keys))
    assert (f"Likely fix: prefix='backbone.' ({found} of the missing keys exist in the "
            "checkpoint under it), e.g. --cfg-options model.backbone.init_cfg.prefix=backbone."
            ) in message


def test_missing_backbone_key_stops_the_run(a2mim_checkpoint, tiny_coco, tmp_path):
    """A checkpoint that lacks one backbone tensor is an error naming it, not a warning."""
    src = a2mim_checkpoint('convnext')['exported']
    ckpt = torch.load(src, map_location='cpu')
    del ckpt['state_dict']['backbone.stages.2.1.depthwise_conv.weight']
    broken = tmp_path / 'broken.pth'
    torch.save(ckpt, broken)
    runner = Runner.from_cfg(tiny_det_cfg('convnext', broken, tiny_coco, tmp_path / 'run'))
    with pytest.raises(RuntimeError, match=r'missing \(1\): stages\.2\.1\.depthwise_conv'):
        runner.train()


def test_c4_shared_head_refuses_a_checkpoint_without_res5(a2mim_checkpoint, tiny_coco,
                                                          tmp_path):
    ckpt = torch.load(a2mim_checkpoint('resnet')['exported'], map_location='cpu')
    ckpt['state_dict'] = {k: v for k, v in ckpt['state_dict'].items()
                          if not k.startswith('backbone.layer4.')}
    no_res5 = tmp_path / 'no_res5.pth'
    torch.save(ckpt, no_res5)
    cfg = tiny_det_cfg('c4', no_res5, tiny_coco, tmp_path)
    init_default_scope('mmdet')
    model = MODELS.build(cfg.model)
    with pytest.raises(RuntimeError, match=r'layer4\.0\.conv1\.weight'):
        model.init_weights()


def test_vit_loads_a_checkpoint_of_another_input_size(a2mim_checkpoint, tiny_coco, tmp_path):
    """Position embedding and rel-pos tables are resized (8x8 -> 12x12 tokens) and loaded."""
    ckpt = a2mim_checkpoint('vit')['full']
    cfg = tiny_det_cfg('vit', ckpt, tiny_coco, tmp_path)
    cfg.model.backbone.img_size = (192, 192)
    init_default_scope('mmdet')
    backbone = MODELS.build(cfg.model.backbone)
    backbone.init_weights()
    state = backbone_state(ckpt)
    assert backbone.pos_embed.shape[1] == 12 * 12 + 1 != state['pos_embed'].shape[1]
    assert torch.equal(backbone.layers[2].ffn.layers[1].weight,
                       state['layers.2.ffn.layers.1.weight'])
    # MMPretrain's BEiT resize (a2mim_plugin's replacement where SciPy lacks interp2d):
    # 15x15 -> 23x23 offsets, the 3 cls rows and the offset (0, 0) kept
    for i, layer in enumerate(backbone.layers):
        src = state[f'layers.{i}.attn.relative_position_bias_table']
        table = layer.attn.relative_position_bias_table
        assert src.shape[0] == 15 * 15 + 3 and table.shape[0] == 23 * 23 + 3
        assert torch.equal(table[-3:], src[-3:])
        torch.testing.assert_close(table[23 * 23 // 2], src[15 * 15 // 2], rtol=0, atol=1e-5)
    out = backbone(torch.rand(1, 3, 192, 192))
    assert [tuple(o.shape) for o in out] == [(1, 64, 12, 12)] * 4


def test_mim_train_mmdet_launches_a_config(a2mim_checkpoint, tiny_coco, tmp_path):
    """The documented launcher: ``mim train mmdet CONFIG`` (tiny ConvNeXt). The ConvNeXt
    configs import only ``a2mim_plugin`` (which registers the layer-decay constructor), so the
    repository root is deliberately kept off ``PYTHONPATH``."""
    ckpt = a2mim_checkpoint('convnext')['exported']
    config = tmp_path / 'tiny_convnext.py'
    cfg = tiny_det_cfg('convnext', ckpt, tiny_coco, tmp_path / 'unused')
    cfg.log_level = 'INFO'
    cfg.dump(str(config))
    env = {k: v for k, v in os.environ.items() if k != 'TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD'}
    kept = [p for p in env.pop('PYTHONPATH', '').split(os.pathsep)
            if p and Path(p).resolve() != REPO_ROOT]
    if kept:
        env['PYTHONPATH'] = os.pathsep.join(kept)
    env['OMP_NUM_THREADS'] = '1'
    mim = Path(sys.executable).with_name('mim')
    proc = subprocess.run([str(mim), 'train', 'mmdet', str(config), '--work-dir',
                           str(tmp_path / 'work')], cwd=REPO_ROOT, env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-5000:]
    log = '\n'.join(p.read_text() for p in (tmp_path / 'work').glob('*/*.log'))
    assert 'Pretrained(strict=True): loaded all' in log
    assert 'coco/bbox_mAP' in log and 'coco/segm_mAP' in log


def test_vit_224_checkpoint_loads_strictly_into_the_1024_config(tmp_path):
    """The real ViT config's geometry and loading settings (``mmpretrain.BEiTViT`` at 1024 px,
    strict ``Pretrained``): a 224-px (14x14) A2MIM ViT loads, every tensor either equal to the
    checkpoint's or resized (position embedding, rel-pos tables to the 64x64 grid)."""
    from mmpretrain.registry import MODELS as PRETRAIN_MODELS

    arch = dict(embed_dims=32, num_layers=2, num_heads=2, feedforward_channels=64)
    init_default_scope('mmpretrain')
    source = PRETRAIN_MODELS.build(dict(
        type='A2MIMViT', arch=arch, img_size=224, use_abs_pos_emb=True, use_rel_pos_bias=True,
        layer_scale_init_value=0.1, final_norm=True, out_type='featmap'))
    source.init_weights()
    with torch.no_grad():
        for layer in source.layers:
            layer.attn.relative_position_bias_table.normal_(std=0.5)
    ckpt = {f'backbone.{k}': v for k, v in source.state_dict().items()}
    torch.save({'state_dict': ckpt}, tmp_path / 'vit_224.pth')

    cfg = tiny_det_cfg('vit', tmp_path / 'vit_224.pth', tmp_path, tmp_path)
    backbone_cfg = cfg.model.backbone.to_dict()
    assert backbone_cfg['type'] == 'mmpretrain.BEiTViT'
    backbone_cfg.update(arch=arch, img_size=(1024, 1024), out_indices=(0, 1))
    init_default_scope('mmdet')
    backbone = MODELS.build(backbone_cfg)
    backbone.init_weights()
    resized = []
    for key, value in backbone.state_dict().items():
        if key.endswith('relative_position_index'):
            continue  # rebuilt for the new grid (allow_missing)
        src = ckpt['backbone.' + key]
        if src.shape == value.shape:
            assert torch.equal(value, src), key
        else:
            resized.append(key)
    assert sorted(resized) == ['layers.0.attn.relative_position_bias_table',
                               'layers.1.attn.relative_position_bias_table', 'pos_embed']
    table = backbone.layers[0].attn.relative_position_bias_table
    src = ckpt['backbone.layers.0.attn.relative_position_bias_table']
    assert table.shape == (127 * 127 + 3, 2) and src.shape == (27 * 27 + 3, 2)
    assert torch.equal(table[-3:], src[-3:])
    torch.testing.assert_close(table[127 * 127 // 2], src[27 * 27 // 2], rtol=0, atol=1e-5)
