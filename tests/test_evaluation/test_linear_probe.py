"""Linear-probe configs: one per published backbone family, the protocol they name, and a real
runner pass per family (tiny arch, tiny data) in which only the head learns."""
import copy
import re
from pathlib import Path

import pytest
import torch
from mmengine.config import Config
from mmengine.hooks import Hook
from mmengine.runner import Runner
from mmpretrain.registry import MODELS

REPO_ROOT = Path(__file__).resolve().parents[2]
BENCHMARKS = REPO_ROOT / 'configs' / 'a2mim' / 'benchmarks'
PRETRAIN = REPO_ROOT / 'configs' / 'a2mim'
FAMILIES = ('vit-small', 'vit-base', 'vit-large', 'resnet50', 'resnet101', 'resnet152',
            'resnet200', 'convnext-small', 'convnext-base', 'swin-base')
LINEAR = sorted(BENCHMARKS.glob('*-linear-*.py'))


def _family(path: Path) -> str:
    return re.match(r'(vit-[a-z]+|resnet\d+|convnext-[a-z]+|swin-[a-z]+)', path.stem).group(1)


def test_every_published_family_has_one_probe_config():
    assert sorted(_family(p) for p in LINEAR) == sorted(FAMILIES)


@pytest.mark.parametrize('path', LINEAR, ids=lambda p: p.stem)
def test_probe_config_follows_its_protocol(path):
    cfg = Config.fromfile(str(path))
    backbone, family = cfg.model.backbone, _family(path)
    # Loads the matching A2MIM pre-training run's last checkpoint, strictly.
    pretrain = Path(cfg.pretrained).parent.name
    max_epochs = Config.fromfile(str(PRETRAIN / f'{pretrain}.py')).train_cfg.max_epochs
    assert cfg.pretrained == f'work_dirs/{pretrain}/epoch_{max_epochs}.pth'
    assert backbone.init_cfg == dict(type='Pretrained', checkpoint=cfg.pretrained,
                                     prefix='backbone.', strict=True)
    assert cfg.train_cfg.max_epochs == 90 and cfg.model.type == 'ImageClassifier'
    model = MODELS.build(copy.deepcopy(cfg.model))
    # Stock MMPretrain backbones (ResNet-200: A2MIMResNet without a token, a plain ResNet).
    assert type(model.backbone).__module__.startswith('mmpretrain.') or (
        family == 'resnet200' and getattr(model.backbone, 'mask_token', None) is None
        and not any('mask' in n for n, _ in model.backbone.named_parameters()))
    if family.startswith('vit'):  # MAE: cls token, BN neck, LARS 6.4, 8 x 2048
        assert backbone.type == 'BEiTViT' and backbone.out_type == 'cls_token'
        assert backbone.frozen_stages == len(model.backbone.layers)
        assert cfg.model.neck.type == 'ClsBatchNormNeck'
        assert cfg.optim_wrapper.optimizer == dict(type='LARS', lr=6.4, weight_decay=0.,
                                                   momentum=0.9)
        assert cfg.train_dataloader.batch_size == 2048
    else:  # MoCo v3 R-50: frozen stages, SGD 0.4 without decay, 8 x 128
        assert cfg.optim_wrapper.optimizer == dict(type='SGD', lr=0.4, momentum=0.9,
                                                   weight_decay=0.)
        assert cfg.train_dataloader.batch_size == 128
        assert backbone.frozen_stages == len(model.backbone.stages if hasattr(
            model.backbone, 'stages') else model.backbone.res_layers) - \
            (1 if family.startswith('swin') else 0)
    model.train()  # some backbones freeze in train()
    trainable = [n for n, p in model.backbone.named_parameters() if p.requires_grad]
    lr_zero = list(cfg.optim_wrapper.get('paramwise_cfg', {}).get('custom_keys', {}))
    assert all(any(f'backbone.{n}'.startswith(k) for k in lr_zero) for n in trainable), trainable


# Tiny archs of each family (64 px), with the width the head reads.
TINY = {
    'vit-small': (dict(arch=dict(_delete_=True, embed_dims=64, num_layers=2, num_heads=2,
                                 feedforward_channels=128), img_size=64, frozen_stages=2), 64),
    'resnet50': (dict(depth=18), 512),
    'convnext-small': (dict(arch='atto'), 320),
    'swin-base': (dict(arch=dict(_delete_=True, embed_dims=32, depths=[2, 2, 2, 2],
                                 num_heads=[1, 2, 4, 8]), img_size=64,
                       stage_cfgs=dict(block_cfgs=dict(window_size=2))), 256),
}
PIPELINE = [dict(type='LoadImageFromFile'), dict(type='RandomResizedCrop', scale=64),
            dict(type='RandomFlip', prob=0.5), dict(type='PackInputs')]


class _Snapshot(Hook):
    """The model's state right before the first iteration (after init_weights)."""

    def before_train(self, runner) -> None:
        self.state = {k: v.clone() for k, v in runner.model.state_dict().items()}


@pytest.mark.parametrize('family', sorted(TINY))
def test_probe_trains_only_the_head(family, tmp_path, labelled_photos):
    path = next(p for p in LINEAR if _family(p) == family)
    cfg = Config.fromfile(str(path))
    backbone, width = copy.deepcopy(TINY[family])
    cfg.merge_from_dict(dict(model=dict(backbone=backbone)))
    if cfg.model.neck is not None and cfg.model.neck.type == 'ClsBatchNormNeck':
        cfg.model.neck.input_features = width
    cfg.model.head.update(in_channels=width, num_classes=14)
    cfg.model.data_preprocessor = dict(cfg.data_preprocessor, num_classes=14)
    # A "pre-trained" backbone with non-trivial BatchNorm statistics, saved as a checkpoint.
    torch.manual_seed(0)
    source = MODELS.build(copy.deepcopy(cfg.model)).backbone
    for module in source.modules():
        if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
            module.running_mean.uniform_(-0.5, 0.5)
            module.running_var.uniform_(0.5, 2.)
    ckpt = tmp_path / 'pre.pth'
    torch.save(dict(state_dict={f'backbone.{k}': v for k, v in source.state_dict().items()},
                    meta=dict()), ckpt)
    cfg.model.backbone.init_cfg.checkpoint = str(ckpt)
    cfg.train_dataloader = dict(
        batch_size=21, num_workers=0, persistent_workers=False, drop_last=True,
        sampler=dict(type='DefaultSampler', shuffle=True),
        dataset=dict(type='CustomDataset', data_root=str(labelled_photos), data_prefix='train',
                     pipeline=PIPELINE))
    cfg.optim_wrapper.type = 'OptimWrapper'  # AmpOptimWrapper needs a GPU
    cfg.optim_wrapper.pop('loss_scale', None)
    cfg.train_cfg = dict(by_epoch=True, max_epochs=1)
    cfg.val_dataloader = cfg.val_evaluator = cfg.val_cfg = None
    cfg.test_dataloader = cfg.test_evaluator = cfg.test_cfg = None
    cfg.default_hooks.checkpoint = None
    cfg.work_dir = str(tmp_path / 'work')
    runner = Runner.from_cfg(cfg)
    snapshot = _Snapshot()
    runner.register_hook(snapshot)
    runner.train()

    after = runner.model.state_dict()
    want = source.state_dict()
    for key, value in want.items():  # weights and BatchNorm buffers, bit for bit
        assert torch.equal(after[f'backbone.{key}'], value), key
        assert torch.equal(snapshot.state[f'backbone.{key}'], value), key  # loaded strictly
    head = [k for k in after if k.startswith('head.')]
    assert head and all(after[k].dtype.is_floating_point for k in head)
    assert any(not torch.equal(after[k], snapshot.state[k]) for k in head), 'head did not learn'
