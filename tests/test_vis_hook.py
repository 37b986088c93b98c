"""ReconstructionVisHook draws original / masked input / reconstruction through the visualizer."""
from pathlib import Path

import numpy as np
import pytest
import torch
from mmengine.runner import Runner
from mmpretrain.registry import HOOKS, MODELS
from mmpretrain.structures import DataSample
from PIL import Image

MEAN = [123.675, 116.28, 103.53]
STD = [58.395, 57.12, 57.375]


def _tiny_model():
    model = MODELS.build(dict(
        type='A2MIM',
        data_preprocessor=dict(type='SelfSupDataPreprocessor', mean=MEAN, std=STD, to_rgb=True),
        backbone=dict(type='A2MIMResNet', depth=18, mask_layer=3, mask_init=1e-6),
        neck=dict(type='A2MIMLinearDecoder', in_channels=512, encoder_stride=32),
        head=dict(type='A2MIMHead', loss=dict(type='FocalL1Loss'))))
    model.init_weights()
    return model


def _raw_batch(n=3, size=64):
    rng = np.random.default_rng(0)
    images = torch.from_numpy(rng.integers(0, 256, (n, 3, size, size), dtype=np.uint8))  # BGR
    samples = []
    for _ in range(n):
        sample = DataSample()
        sample.set_mask(torch.from_numpy(rng.integers(0, 2, (size // 16, size // 16))))
        samples.append(sample)
    return dict(inputs=images, data_samples=samples)


def test_grid_layout_and_tiles():
    model = _tiny_model()
    batch = _raw_batch(n=3)
    hook = HOOKS.build(dict(type='ReconstructionVisHook', interval=1, num_images=2))
    grid = hook.make_grid(model, batch)
    tile, pad = 64, 2
    assert grid.dtype == np.uint8 and grid.shape == (2 * (tile + pad) + pad,
                                                     3 * (tile + pad) + pad, 3)
    assert model.training, 'the hook restores train mode'

    def tile_at(row, col):
        top, left = pad + row * (tile + pad), pad + col * (tile + pad)
        return grid[top:top + tile, left:left + tile].astype(int)

    for row in range(2):
        rgb = batch['inputs'][row].flip(0).permute(1, 2, 0).numpy().astype(int)  # BGR -> RGB
        original, masked = tile_at(row, 0), tile_at(row, 1)
        assert np.abs(original - rgb).max() <= 1
        pixel_mask = batch['data_samples'][row].mask.repeat_interleave(16, 0) \
            .repeat_interleave(16, 1).numpy().astype(bool)
        assert np.abs(masked[~pixel_mask] - rgb[~pixel_mask]).max() <= 1
        mean_rgb = rgb.reshape(-1, 3).mean(0)
        assert np.abs(masked[pixel_mask] - mean_rgb).max() <= 1, 'masked pixels show the RGB mean'
        assert not np.array_equal(tile_at(row, 2), original), 'third column is the prediction'


@pytest.mark.parametrize('with_tensorboard', [False, True])
def test_hook_writes_pictures_through_runner(tmp_path, photo_dataset, with_tensorboard):
    backends = [dict(type='LocalVisBackend')]
    if with_tensorboard:
        pytest.importorskip('tensorboard')
        backends.append(dict(type='TensorboardVisBackend'))
    runner = Runner(
        model=dict(
            type='A2MIM',
            data_preprocessor=dict(type='SelfSupDataPreprocessor', mean=MEAN, std=STD,
                                   to_rgb=True),
            backbone=dict(type='A2MIMResNet', depth=18, mask_layer=3, mask_init=1e-6),
            neck=dict(type='A2MIMLinearDecoder', in_channels=512, encoder_stride=32),
            head=dict(type='A2MIMHead', loss=dict(type='FocalL1Loss'))),
        work_dir=str(tmp_path),
        train_dataloader=dict(
            batch_size=2, num_workers=0, sampler=dict(type='DefaultSampler', shuffle=False),
            collate_fn=dict(type='default_collate'),
            dataset=dict(type='CustomDataset', data_root=str(photo_dataset), data_prefix='train',
                         with_label=False,
                         pipeline=[dict(type='LoadImageFromFile'),
                                   dict(type='RandomResizedCrop', scale=64),
                                   dict(type='SimMIMMaskGenerator', input_size=64,
                                        mask_patch_size=32, model_patch_size=16),
                                   dict(type='PackInputs')])),
        train_cfg=dict(type='IterBasedTrainLoop', max_iters=3),
        optim_wrapper=dict(optimizer=dict(type='AdamW', lr=1e-3)),
        custom_hooks=[dict(type='ReconstructionVisHook', interval=2, num_images=2)],
        default_hooks=dict(checkpoint=dict(type='CheckpointHook', interval=100)),
        visualizer=dict(type='UniversalVisualizer', vis_backends=backends),
        default_scope='mmpretrain')
    runner.train()
    images = sorted(Path(runner.log_dir).glob('vis_data/vis_image/reconstruction_*.png'))
    assert [p.name for p in images] == ['reconstruction_2.png', 'reconstruction_3.png']
    picture = np.asarray(Image.open(images[0]))
    assert picture.shape == (2 * 66 + 2, 3 * 66 + 2, 3)
    if with_tensorboard:
        assert list(Path(runner.log_dir).glob('vis_data/events.out.tfevents.*'))


def test_invalid_arguments():
    with pytest.raises(ValueError, match='interval and num_images'):
        HOOKS.build(dict(type='ReconstructionVisHook', interval=0))
