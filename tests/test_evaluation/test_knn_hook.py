"""KNNEvalHook through the real runner: metrics, checkpoint meta, no effect on training,
a named error before training when a split is missing."""
import copy
import json
import logging

import pytest
import torch
from mmengine.config import Config
from mmengine.runner import Runner

from a2mim_plugin.engine.hooks import KNNDataError
from log_capture import captured_logs, messages

TINY_RUN = dict(
    model=dict(
        type='A2MIM',
        data_preprocessor=dict(type='SelfSupDataPreprocessor', mean=[123.675, 116.28, 103.53],
                               std=[58.395, 57.12, 57.375], to_rgb=True),
        backbone=dict(type='A2MIMResNet', depth=18, base_channels=8, mask_layer=3,
                      mask_init=1e-6, drop_path_rate=0.1),
        neck=dict(type='A2MIMLinearDecoder', in_channels=64, encoder_stride=32),
        head=dict(type='A2MIMHead', loss=dict(type='FocalL1Loss'), fft_weight=0.5,
                  fft_focal=True, fft_unmask_replace='mixed', fft_unmask_weight=1e-3)),
    train_dataloader=dict(
        batch_size=21, num_workers=0, persistent_workers=False,
        sampler=dict(type='DefaultSampler', shuffle=True),
        collate_fn=dict(type='default_collate'),
        dataset=dict(type='CustomDataset', data_prefix='train', with_label=False,
                     pipeline=[dict(type='LoadImageFromFile'),
                               dict(type='RandomResizedCrop', scale=64,
                                    crop_ratio_range=(0.8, 1.0)),
                               dict(type='RandomFlip', prob=0.5),
                               dict(type='SimMIMMaskGenerator', input_size=64,
                                    mask_patch_size=32, model_patch_size=16, mask_ratio=0.6),
                               dict(type='PackInputs')])),
    optim_wrapper=dict(type='OptimWrapper',
                       optimizer=dict(type='AdamW', lr=1e-3, weight_decay=0.05)),
    train_cfg=dict(type='EpochBasedTrainLoop', max_epochs=2),
    default_hooks=dict(logger=dict(type='LoggerHook', interval=1),
                       checkpoint=dict(type='CheckpointHook', interval=1)),
    randomness=dict(seed=0),
    default_scope='mmpretrain',
)
# The bank pipeline draws from numpy's global generator (RandomFlip), as the training masks
# do: unless the hook restores the RNG streams, the run after it draws other masks.
KNN_HOOK = dict(type='KNNEvalHook', bank=dict(type='CustomDataset', data_prefix='train'),
                query=dict(type='CustomDataset', data_prefix='val'), interval=1,
                before_train=True, ks=(3, 20), crop_size=64, batch_size=8, num_workers=0)
FLIP_PIPELINE = [dict(type='LoadImageFromFile'), dict(type='RandomFlip', prob=0.5),
                 dict(type='PackInputs')]


def _runner(tmp_path, name, data_root, knn=None):
    cfg = copy.deepcopy(TINY_RUN)
    cfg['train_dataloader']['dataset']['data_root'] = str(data_root)
    if knn is not None:
        cfg['default_hooks']['knn_eval'] = knn
    return Runner.from_cfg(Config(dict(cfg, work_dir=str(tmp_path / name))))


def test_hook_logs_knn_and_leaves_training_bit_identical(tmp_path, labelled_photos):
    plain = _runner(tmp_path, 'plain', labelled_photos)
    plain.train()
    knn = dict(KNN_HOOK, bank=dict(KNN_HOOK['bank'], pipeline=FLIP_PIPELINE))
    hooked = _runner(tmp_path, 'hooked', labelled_photos, knn)
    hooked.train()

    # Same weights (and BatchNorm statistics) as the run without the hook, in train mode.
    want, got = plain.model.state_dict(), hooked.model.state_dict()
    assert want.keys() == got.keys()
    assert all(torch.equal(want[k], got[k]) for k in want)
    assert hooked.model.training

    # Evaluated before training (step 0) and after each of the 2 epochs (2 iterations each).
    records = [json.loads(line) for line in next(
        (tmp_path / 'hooked').glob('*/vis_data/scalars.json')).read_text().splitlines()]
    knn_records = [r for r in records if 'knn/top1' in r]
    assert [r['step'] for r in knn_records] == [0, 2, 4]
    for r in knn_records:
        assert set(r) >= {'knn/top1', 'knn/top5', 'knn/top1_k20', 'knn/top5_k20'}
        # 28 queries: accuracies are multiples of 100 / 28.
        assert round(r['knn/top1'] * 28 / 100, 3) == round(r['knn/top1'] * 28 / 100)
    assert hooked.message_hub.get_scalar('knn/top1').current() == knn_records[-1]['knn/top1']
    log = next((tmp_path / 'hooked').glob('*/*.log')).read_text()
    assert 'KNNEvalHook: bank 42 images, queries 28, k=[3, 20]' in log
    assert 'k-NN (epoch 2, iter 4; bank 42, 28 queries' in log

    ckpt = torch.load(tmp_path / 'hooked' / 'epoch_2.pth', map_location='cpu')
    assert ckpt['meta']['knn'] == dict(
        {k: v for k, v in knn_records[-1].items() if k.startswith('knn/')}, epoch=2, iter=4)


def test_iteration_interval(tmp_path, labelled_photos):
    knn = dict(KNN_HOOK, by_epoch=False, interval=3, before_train=False, ks=(5, ))
    runner = _runner(tmp_path, 'iters', labelled_photos, knn)
    steps = []
    hook = next(h for h in runner.hooks if type(h).__name__ == 'KNNEvalHook')
    original = hook.evaluate
    hook.evaluate = lambda r, epoch, step: steps.append(step) or original(r, epoch, step)
    runner.train()
    # Every 3 iterations and after the last one (4).
    assert steps == [3, 4]
    assert hook.splits['bank'].num_classes == 14


@pytest.mark.parametrize('split', ['bank', 'query'])
def test_missing_split_is_a_named_error_before_training(tmp_path, labelled_photos, split):
    knn = copy.deepcopy(KNN_HOOK)
    knn[split]['data_prefix'] = 'no_such_split'
    runner = _runner(tmp_path, 'missing', labelled_photos, knn)
    trained = []
    runner.train_loop.run_iter = lambda *a, **k: trained.append(1)
    with pytest.raises(KNNDataError) as info:
        runner.train()
    message = str(info.value)
    assert f'the k-NN {split} split' in message
    assert f'default_hooks.knn_eval.{split}.data_root' in message
    assert 'default_hooks.knn_eval.enabled=False' in message
    assert trained == []


def test_per_class_subsets_set_the_bank_size(tmp_path, labelled_photos):
    knn = dict(KNN_HOOK, bank_per_class=2, query_per_class=1)
    runner = _runner(tmp_path, 'subset', labelled_photos, knn)
    hook = next(h for h in runner.hooks if type(h).__name__ == 'KNNEvalHook')
    hook.before_run(runner)
    assert len(hook.splits['bank'].indices) == 28 and len(hook.splits['query'].indices) == 14
    metrics = hook.evaluate(runner, epoch=0, step=0)
    assert set(metrics) == {'knn/top1', 'knn/top5', 'knn/top1_k20', 'knn/top5_k20'}
    assert all(0. <= v <= 100. for v in metrics.values())


def test_imagenet_pretrain_configs_carry_the_hook():
    """Every ImageNet pre-training config evaluates k-NN on ImageNet train (seeded 100 per
    class) / val at its training crop, and one line turns it off."""
    from pathlib import Path
    configs = Path(__file__).resolve().parents[2] / 'configs'
    paths = sorted((configs / 'a2mim').glob('*.py')) + \
        sorted((configs / 'simmim_baselines').glob('*.py'))
    assert len(paths) == 24
    for path in paths:
        cfg = Config.fromfile(str(path))
        knn = cfg.default_hooks.knn_eval
        assert knn.type == 'KNNEvalHook', path.name
        assert knn.bank == dict(type='ImageNet', split='train')
        assert knn.query == dict(type='ImageNet', split='val')
        assert (knn.bank_per_class, knn.interval, tuple(knn.ks)) == (100, 10, (20, 200))
        crop = next(t for t in cfg.train_dataloader.dataset.pipeline
                    if t['type'] == 'RandomResizedCrop')['scale']
        assert knn.crop_size == crop, path.name
        assert cfg.train_dataloader.dataset.data_root == 'data/imagenet/'  # the hook's root



def test_one_line_turns_the_hook_off_in_a_real_runner(tmp_path, labelled_photos):
    """``default_hooks.knn_eval.enabled=False`` (the documented switch) builds no split, so
    a data root without labelled splits trains; ``None`` is refused by mmengine itself."""
    knn = copy.deepcopy(KNN_HOOK)
    knn['bank']['data_prefix'] = 'no_such_split'
    knn['enabled'] = False
    runner = _runner(tmp_path, 'off', labelled_photos, knn)
    hook = next(h for h in runner.hooks if type(h).__name__ == 'KNNEvalHook')
    with captured_logs(logging.INFO) as records:
        runner.train()
    assert hook.splits == {} and hook.last is None
    assert 'KNNEvalHook is off (default_hooks.knn_eval.enabled=False).' in messages(records)
