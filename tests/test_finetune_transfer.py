"""Pre-train, export, fine-tune: the fine-tuning configs load what the pre-training configs write.

For a ResNet-18 and a tiny ViT version of the A2MIM rows:

1. a tiny version of the real pre-training config trains 2 iterations through MMPretrain's
   ``tools/train.py``;
2. ``tools/export_backbone.py`` reduces the checkpoint to the backbone;
3. a tiny version of the matching real fine-tuning config builds its classifier from that file:
   every backbone weight equals the pre-trained one, the head is not loaded, and the only
   missing backbone keys are those the protocol creates fresh (the ViT's ``ln2`` norm on the
   averaged patch tokens; the pre-trained final norm ``ln1`` is dropped by design);
4. the same config trains 2 iterations and runs one validation pass through ``tools/train.py``.
"""
import copy
import math
import subprocess
import sys
from pathlib import Path
from typing import Dict, Tuple

import pytest
import torch
from mmengine.config import Config
from mmengine.evaluator import Evaluator
from mmengine.runner import Runner
from mmpretrain.registry import MODELS
from mmpretrain.structures import DataSample

from helpers import REPO_ROOT, read_scalars, run_stock_train
from test_configs import CONFIGS, FINETUNE_DIR, TINY_SIZE, write_tiny_pretrain_config

pytestmark = pytest.mark.slow

EXPORT_TOOL = REPO_ROOT / 'tools' / 'export_backbone.py'
TINY_VIT_ARCH = dict(embed_dims=64, num_layers=2, num_heads=2, feedforward_channels=128)

CASES = {
    'resnet': dict(
        pretrain='a2mim/a2mim_resnet50_8xb256-coslr-300e_in1k.py',
        finetune='resnet50_a2mim-300e-pre_8xb256-amp-rsb-a2-300e_in1k.py',
        backbone=dict(depth=18),
        head_in=512,
        missing=set(),
        dropped=set()),
    'vit': dict(
        pretrain='a2mim/a2mim_vit-small-p16_8xb256-step-800e_in1k.py',
        finetune='vit-small-p16_a2mim-800e-pre_8xb128-amp-coslr-200e_in1k.py',
        backbone=dict(arch=dict(_delete_=True, **TINY_VIT_ARCH), img_size=TINY_SIZE),
        head_in=64,
        # out_type='avg_featmap' creates a fresh norm on the mean patch token; final_norm=False
        # drops the pre-trained final norm (the official fc_norm protocol).
        missing={'ln2.weight', 'ln2.bias'},
        dropped={'ln1.weight', 'ln1.bias'}),
}


def _tiny_pipeline(pipeline) -> list:
    pipeline = [dict(t) for t in copy.deepcopy(pipeline)]
    for t in pipeline:
        t.pop('_scope_', None)
        if t['type'] == 'RandomResizedCrop':
            t['scale'] = TINY_SIZE
        elif t['type'] == 'ResizeEdge':
            t['scale'] = TINY_SIZE + TINY_SIZE // 8
        elif t['type'] == 'CenterCrop':
            t['crop_size'] = TINY_SIZE
    return pipeline


def write_tiny_finetune_config(config: Path, out: Path, data_root: Path, checkpoint: Path,
                               backbone: dict, head_in: int) -> Path:
    """A tiny CPU version of a fine-tuning config, inheriting it through ``_base_``."""
    cfg = Config.fromfile(str(config))
    num_classes = len([p for p in (data_root / 'train').iterdir() if p.is_dir()])
    optim_wrapper = copy.deepcopy(cfg.optim_wrapper.to_dict())
    optim_wrapper.update(type='OptimWrapper', _delete_=True)  # AmpOptimWrapper needs a GPU
    optim_wrapper.pop('loss_scale', None)

    def dataset(pipeline):
        return dict(_delete_=True, type='CustomDataset', data_root=str(data_root),
                    data_prefix='train', with_label=True, indices=4,
                    pipeline=_tiny_pipeline(pipeline))

    backbone = dict(copy.deepcopy(backbone), init_cfg=dict(checkpoint=str(checkpoint)))
    out.write_text(f"""_base_ = {str(config)!r}
data_preprocessor = dict(num_classes={num_classes})
model = dict(
    backbone={backbone!r},
    head=dict(in_channels={head_in}, num_classes={num_classes}))
train_dataloader = dict(
    batch_size=2, num_workers=0, persistent_workers=False, pin_memory=False,
    dataset={dataset(cfg.train_dataloader.dataset.pipeline)!r})
val_dataloader = dict(
    batch_size=2, num_workers=0, persistent_workers=False, pin_memory=False,
    dataset={dataset(cfg.val_dataloader.dataset.pipeline)!r})
val_evaluator = dict(_delete_=True, type='Accuracy', topk=(1, ))
optim_wrapper = {optim_wrapper!r}
train_cfg = dict(max_epochs=1, val_interval=1)
default_hooks = dict(logger=dict(interval=1), checkpoint=dict(interval=1))
""")
    return out


def _backbone_state(path: Path) -> Dict[str, torch.Tensor]:
    ckpt = torch.load(path, map_location='cpu')  # weights-only, with the plugin allow-list
    state = ckpt.get('state_dict', ckpt)
    return {k[len('backbone.'):]: v for k, v in state.items() if k.startswith('backbone.')}


@pytest.mark.parametrize('case', sorted(CASES))
def test_pretrain_export_finetune(case, tmp_path, photo_dataset):
    spec = CASES[case]

    # 1. Tiny A2MIM pre-training with the real pre-training config.
    pre_config = write_tiny_pretrain_config(CONFIGS / spec['pretrain'],
                                            tmp_path / 'tiny_pretrain.py', photo_dataset)
    run_stock_train(pre_config, tmp_path / 'pretrain')
    pre_ckpt = tmp_path / 'pretrain' / 'epoch_1.pth'
    assert pre_ckpt.is_file()

    # 2. Backbone-only export.
    exported = tmp_path / 'backbone.pth'
    proc = subprocess.run([sys.executable, str(EXPORT_TOOL), str(pre_ckpt), str(exported)],
                          cwd=REPO_ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    exported_state = _backbone_state(exported)
    pre_state = _backbone_state(pre_ckpt)
    assert 'mask_token' in pre_state and 'mask_token' not in exported_state
    for key, value in exported_state.items():
        assert torch.equal(value, pre_state[key]), key

    # 3. The real fine-tuning config (tiny) loads it: exact weights, only the protocol's new keys
    #    missing, head untouched by the checkpoint.
    ft_config = write_tiny_finetune_config(
        FINETUNE_DIR / spec['finetune'], tmp_path / 'tiny_finetune.py', photo_dataset,
        exported, spec['backbone'], spec['head_in'])
    cfg = Config.fromfile(str(ft_config))
    init_cfg = cfg.model.backbone.init_cfg
    assert (init_cfg.type, init_cfg.checkpoint, init_cfg.prefix, init_cfg.strict) == (
        'Pretrained', str(exported), 'backbone.', True)
    model = MODELS.build(cfg.model)
    model.init_weights()
    model_state = model.backbone.state_dict()
    assert set(model_state) - set(exported_state) == spec['missing']
    assert set(exported_state) - set(model_state) == spec['dropped']
    for key in set(model_state) & set(exported_state):
        assert torch.equal(model_state[key], exported_state[key]), key
    assert not any(k.startswith(('neck.', 'head.')) for k in torch.load(
        exported, map_location='cpu')['state_dict'])

    # 4. Two fine-tuning iterations and one validation pass through the stock entry point.
    work_dir = tmp_path / 'finetune'
    proc = run_stock_train(ft_config, work_dir)
    assert str(exported) in proc.stdout + proc.stderr  # the runner logged loading it
    assert (work_dir / 'epoch_1.pth').is_file()
    records = read_scalars(work_dir)
    losses = [r['loss'] for r in records if 'loss' in r]
    assert len(losses) == 2 and all(math.isfinite(v) for v in losses), losses
    top1 = [r['accuracy/top1'] for r in records if 'accuracy/top1' in r]
    assert len(top1) == 1 and 0. <= top1[0] <= 100.  # wiring: the metric was logged
    # The logged value is the top-1 of the validated weights: recompute it from the epoch
    # checkpoint (which holds the weights validation used, EMA ones where the config has EMA).
    predicted, labels = predict_val_set(cfg, work_dir / 'epoch_1.pth')
    assert len(labels) == 4
    assert top1[0] == pytest.approx(100. * (predicted == labels).double().mean().item(),
                                    abs=1e-4)
    # And the config's evaluator scores known predictions as it must.
    num_classes = cfg.model.head.num_classes
    assert evaluate_scores(cfg, labels, one_hot(labels, num_classes)) == 100.
    assert evaluate_scores(cfg, labels, one_hot((labels + 1) % num_classes, num_classes)) == 0.
    constant = one_hot(torch.full_like(labels, int(labels[0])), num_classes)
    chance = 100. * (labels == labels[0]).double().mean().item()  # the first image's class
    assert 0. < chance < 100.  # both classes present: the check tells chance from perfect
    assert evaluate_scores(cfg, labels, constant) == pytest.approx(chance, abs=1e-4)


def one_hot(labels: torch.Tensor, num_classes: int) -> torch.Tensor:
    return torch.nn.functional.one_hot(labels, num_classes).float()


def predict_val_set(cfg: Config, checkpoint: Path) -> Tuple[torch.Tensor, torch.Tensor]:
    """(predicted class, ground-truth class) of every validation image, from ``checkpoint``'s
    weights, without the metric code."""
    model_cfg = copy.deepcopy(cfg.model)
    model_cfg.setdefault('data_preprocessor', cfg.get('data_preprocessor'))  # as the Runner
    model = MODELS.build(model_cfg)
    model.load_state_dict(torch.load(checkpoint, map_location='cpu')['state_dict'])
    model.eval()
    predicted, labels = [], []
    with torch.no_grad():
        for batch in Runner.build_dataloader(cfg.val_dataloader):
            for sample in model.val_step(batch):
                predicted.append(int(sample.pred_score.argmax()))
                labels.append(int(sample.gt_label))
    return torch.tensor(predicted), torch.tensor(labels)


def evaluate_scores(cfg: Config, labels: torch.Tensor, scores: torch.Tensor) -> float:
    """The top-1 that ``cfg.val_evaluator`` gives to ``scores`` (N, classes) for ``labels``."""
    evaluator = Evaluator(copy.deepcopy(cfg.val_evaluator))
    evaluator.process(data_samples=[
        DataSample().set_gt_label(int(label)).set_pred_score(score)
        for label, score in zip(labels, scores)])
    return evaluator.evaluate(len(labels))['accuracy/top1']
