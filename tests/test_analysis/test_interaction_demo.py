"""The pieces of `make interaction-demo` at a tiny setting: the "which photo" split, the two
fine-tuning configs through the stock runner (the A2MIM one loading a demo pre-training
checkpoint strictly), and the tool on both fine-tuned checkpoints."""
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.runner import Runner
from mmpretrain.registry import MODELS

from a2mim_plugin.datasets import DEMO_PHOTOS, make_demo_classification

from test_interaction_tool import _tool

REPO = Path(__file__).resolve().parents[2]
PRETRAIN = REPO / 'configs/demo/a2mim_resnet18_1xb16-coslr-30e_photos-128px.py'
FINETUNE = {
    'A2MIM': REPO / 'configs/demo/resnet18_a2mim-demo-pre_1xb32-30e_photo-cls-96px.py',
    'scratch': REPO / 'configs/demo/resnet18_scratch_1xb32-30e_photo-cls-96px.py',
}


def test_which_photo_split(tmp_path):
    root = make_demo_classification(tmp_path, train_per_photo=2, val_per_photo=1, crop_size=32)
    stems = sorted(Path(name).stem for name in DEMO_PHOTOS)
    for split, count in (('train', 2), ('val', 1)):
        assert sorted(p.name for p in (root / split).iterdir()) == stems
        assert all(len(list((root / split / s).glob('*.JPEG'))) == count for s in stems)
    train = (root / 'train' / 'coffee' / 'coffee_000.JPEG').read_bytes()
    assert train != (root / 'val' / 'coffee' / 'coffee_000.JPEG').read_bytes(), 'new crops'
    stamp = (root / 'val' / 'coffee' / 'coffee_000.JPEG').stat().st_mtime_ns
    make_demo_classification(tmp_path, train_per_photo=2, val_per_photo=1, crop_size=32)
    assert (root / 'val' / 'coffee' / 'coffee_000.JPEG').stat().st_mtime_ns == stamp, 'kept'


@pytest.mark.slow
def test_interaction_demo_pieces(tmp_path):
    data = make_demo_classification(tmp_path / 'cls', train_per_photo=1, val_per_photo=1,
                                    crop_size=64)
    pre_cfg = Config.fromfile(str(PRETRAIN))
    pretrained = MODELS.build(pre_cfg.model)
    pretrained.init_weights()
    torch.save(dict(state_dict=pretrained.state_dict(), meta=dict()), tmp_path / 'pre.pth')
    checkpoints = {}
    for name, path in FINETUNE.items():
        cfg = Config.fromfile(str(path))
        assert cfg.model.head.num_classes == len(DEMO_PHOTOS)
        if name == 'scratch':
            assert cfg.model.backbone.init_cfg is None
        else:
            assert cfg.model.backbone.init_cfg.strict and cfg.pretrained.endswith('epoch_30.pth')
            cfg.model.backbone.init_cfg.checkpoint = str(tmp_path / 'pre.pth')
            model = MODELS.build(cfg.model)
            model.init_weights()  # strict: every backbone tensor from the pre-training
            for key, value in model.backbone.state_dict().items():
                torch.testing.assert_close(value, pretrained.backbone.state_dict()[key])
        for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
            cfg[loader].update(batch_size=7, num_workers=0, persistent_workers=False)
            cfg[loader].dataset.data_root = str(data)
        cfg.train_cfg.update(max_epochs=1, val_interval=1)
        cfg.param_scheduler = []
        cfg.default_hooks.checkpoint.interval = 1
        cfg.work_dir = str(tmp_path / name)
        runner = Runner.from_cfg(cfg)
        runner.train()
        checkpoints[name] = (str(path), str(tmp_path / name / 'epoch_1.pth'))
    out = tmp_path / 'out'
    argv = ['--data-root', str(data), '--data-prefix', 'val', '--resize', '64',
            '--crop-size', '64', '--num-images', '3', '--grid', '2', '--device', 'cpu',
            '--out-dir', str(out)]
    for name, (config, checkpoint) in checkpoints.items():
        argv += ['--model', name, config, checkpoint]
    assert _tool().main(argv) == 0
    record = json.loads((out / 'interaction.json').read_text())
    assert list(record['models']) == ['A2MIM', 'scratch']
    for entry in record['models'].values():
        assert entry['orders'] == [0, 1, 2] and entry['images'] == 3
        assert np.isfinite(entry['J']).all() and np.mean(entry['J']) == pytest.approx(1.0)
    assert (out / 'interaction.png').stat().st_size > 1000
