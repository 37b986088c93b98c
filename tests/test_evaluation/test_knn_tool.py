"""tools/knn_eval.py: a pre-training checkpoint, its backbone export and a classifier config
loading it give the same numbers as the library; random init differs; bad input is named."""
import importlib.util
import json
from pathlib import Path

import pytest
import torch
from mmengine.config import Config
from mmpretrain.registry import MODELS

from a2mim_plugin.evaluation import build_split, eval_pipeline, knn_eval_model

REPO_ROOT = Path(__file__).resolve().parents[2]

PRETRAIN_CFG = '''
custom_imports = dict(imports=['a2mim_plugin'], allow_failed_imports=False)
model = dict(
    type='A2MIM',
    data_preprocessor=dict(type='SelfSupDataPreprocessor', mean=[123.675, 116.28, 103.53],
                           std=[58.395, 57.12, 57.375], to_rgb=True),
    backbone=dict(type='A2MIMResNet', depth=18, base_channels=8, mask_layer=3, mask_init=1e-6),
    neck=dict(type='A2MIMLinearDecoder', in_channels=64, encoder_stride=32),
    head=dict(type='A2MIMHead', loss=dict(type='FocalL1Loss')))
train_dataloader = dict(dataset=dict(type='CustomDataset', data_root=DATA_ROOT,
                                     data_prefix='train', with_label=False))
'''
CLASSIFIER_CFG = '''
model = dict(
    type='ImageClassifier',
    data_preprocessor=dict(type='ClsDataPreprocessor', mean=[123.675, 116.28, 103.53],
                           std=[58.395, 57.12, 57.375], to_rgb=True, num_classes=14),
    backbone=dict(type='ResNet', depth=18, base_channels=8,
                  init_cfg=dict(type='Pretrained', checkpoint='', prefix='backbone.')),
    neck=dict(type='GlobalAveragePooling'),
    head=dict(type='LinearClsHead', num_classes=14, in_channels=64))
'''


def _tool():
    spec = importlib.util.spec_from_file_location('knn_eval_tool',
                                                  REPO_ROOT / 'tools' / 'knn_eval.py')
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope='module')
def trained(tmp_path_factory, labelled_photos):
    """A tiny A2MIM model with non-trivial weights, its checkpoint, export and configs."""
    root = tmp_path_factory.mktemp('knn_tool')
    pre_cfg = root / 'pre.py'
    pre_cfg.write_text(f'DATA_ROOT = {str(labelled_photos)!r}\n' + PRETRAIN_CFG)
    (root / 'cls.py').write_text(CLASSIFIER_CFG)
    torch.manual_seed(3)
    model = MODELS.build(Config.fromfile(str(pre_cfg)).model)
    model.init_weights()
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.uniform_(-0.2, 0.2)
    state = model.state_dict()
    torch.save(dict(state_dict=state, meta=dict()), root / 'epoch_1.pth')
    torch.save(dict(state_dict={k: v for k, v in state.items() if k.startswith('backbone.')},
                    meta=dict()), root / 'backbone.pth')
    splits = {name: build_split(dict(type='CustomDataset', data_root=str(labelled_photos),
                                     data_prefix=prefix, pipeline=eval_pipeline(64)))
              for name, prefix in (('bank', 'train'), ('query', 'val'))}
    want = knn_eval_model(model, splits['bank'], splits['query'], ks=(3, 20),
                          dtype=torch.float16).metrics()
    return root, want


def test_help():
    with pytest.raises(SystemExit) as info:
        _tool().parse_args(['--help'])
    assert info.value.code == 0


def test_checkpoint_export_and_classifier_config_agree(tmp_path, trained, labelled_photos):
    root, want = trained
    results = {}
    for name, config, ckpt in (('pretrain', root / 'pre.py', root / 'epoch_1.pth'),
                               ('export', root / 'pre.py', root / 'backbone.pth'),
                               ('classifier', root / 'cls.py', root / 'epoch_1.pth')):
        out = tmp_path / f'{name}.json'
        code = _tool().main([str(config), str(ckpt), '--data-root', str(labelled_photos),
                             '--crop-size', '64', '--k', '3', '--k', '20', '--num-workers',
                             '0', '--device', 'cpu', '--out', str(out)])
        assert code == 0
        results[name] = json.loads(out.read_text())
        assert results[name]['num_bank'] == 42 and results[name]['num_queries'] == 28
        assert {k: results[name][k] for k in want} == want, name
    # An untrained backbone of the same config gives other numbers.
    out = tmp_path / 'random.json'
    assert _tool().main([str(root / 'pre.py'), '--random-init', '--data-root',
                         str(labelled_photos), '--crop-size', '64', '--k', '3', '--k', '20',
                         '--num-workers', '0', '--device', 'cpu', '--out', str(out)]) == 0
    random = json.loads(out.read_text())
    assert {k: random[k] for k in want} != want


def test_bad_checkpoint_and_missing_split_are_named(tmp_path, trained, labelled_photos, capsys):
    root, _ = trained
    torch.save(dict(state_dict={'head.fc.weight': torch.zeros(2, 2)}), tmp_path / 'bad.pth')
    argv = ['--data-root', str(labelled_photos), '--crop-size', '64', '--num-workers', '0',
            '--device', 'cpu']
    assert _tool().main([str(root / 'pre.py'), str(tmp_path / 'bad.pth'), *argv]) == 2
    assert 'holds no backbone.* weights' in capsys.readouterr().err
    assert _tool().main([str(root / 'pre.py'), str(root / 'epoch_1.pth'), *argv,
                         '--query', 'no_such_split']) == 2
    assert 'no_such_split' in capsys.readouterr().err
