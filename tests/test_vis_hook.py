"""ReconstructionVisHook draws original / masked input / prediction / prediction with the visible
pixels pasted back (and optionally log amplitude spectra) through the visualizer."""
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


TILE, PAD = 64, 2


def _tile(grid, row, col):
    top, left = PAD + row * (TILE + PAD), PAD + col * (TILE + PAD)
    return grid[top:top + TILE, left:left + TILE].astype(int)


def _expected_prediction(model, batch, rows):
    """The model's prediction for the batch, de-normalised and clipped, computed here without
    the hook: BGR -> RGB, normalise, masked forward pass in eval mode."""
    rgb = batch['inputs'][:rows].flip(1).float()
    mean, std = torch.tensor(MEAN).view(1, 3, 1, 1), torch.tensor(STD).view(1, 3, 1, 1)
    mask = torch.stack([s.mask for s in batch['data_samples'][:rows]])
    model.eval()
    with torch.no_grad():
        pred = model.reconstruct((rgb - mean) / std, mask)['pred']
    model.train()
    return ((pred * std + mean).clamp(0, 255)).permute(0, 2, 3, 1).numpy(), rgb.permute(
        0, 2, 3, 1).numpy()


def _pixel_mask(sample):
    return sample.mask.repeat_interleave(16, 0).repeat_interleave(16, 1).numpy().astype(bool)


def test_grid_layout_and_tiles():
    model = _tiny_model()
    batch = _raw_batch(n=3)
    hook = HOOKS.build(dict(type='ReconstructionVisHook', interval=1, num_images=2))
    grid = hook.make_grid(model, batch)
    assert grid.dtype == np.uint8 and grid.shape == (2 * (TILE + PAD) + PAD,
                                                     4 * (TILE + PAD) + PAD, 3)
    assert model.training, 'the hook restores train mode'
    for row in range(2):
        rgb = batch['inputs'][row].flip(0).permute(1, 2, 0).numpy().astype(int)  # BGR -> RGB
        original, masked = _tile(grid, row, 0), _tile(grid, row, 1)
        assert np.abs(original - rgb).max() <= 1
        pixel_mask = _pixel_mask(batch['data_samples'][row])
        assert np.abs(masked[~pixel_mask] - rgb[~pixel_mask]).max() <= 1
        mean_rgb = rgb.reshape(-1, 3).mean(0)
        assert np.abs(masked[pixel_mask] - mean_rgb).max() <= 1, 'masked pixels show the RGB mean'


def test_prediction_and_paste_back_columns():
    """Column 3 is the de-normalised prediction of this batch; column 4 is the original on
    visible cells and the prediction on masked ones."""
    model = _tiny_model()
    with torch.no_grad():  # a decoder whose output is far from the input everywhere
        model.neck.decoder[0].bias.add_(0.7)
    batch = _raw_batch(n=3)
    grid = HOOKS.build(dict(type='ReconstructionVisHook', num_images=2)).make_grid(model, batch)
    prediction, rgb = _expected_prediction(model, batch, rows=2)
    for row in range(2):
        pixel_mask = _pixel_mask(batch['data_samples'][row])
        assert 0 < pixel_mask.mean() < 1
        expected = np.round(prediction[row]).astype(int)
        predicted, pasted = _tile(grid, row, 2), _tile(grid, row, 3)
        assert np.abs(predicted - expected).max() <= 1, 'prediction column = model prediction'
        assert np.abs(predicted - rgb[row]).mean() > 20, 'the prediction is not the input'
        assert np.abs(pasted[~pixel_mask] - rgb[row][~pixel_mask]).max() <= 1, \
            'visible cells pasted back from the original'
        assert np.abs(pasted[pixel_mask] - expected[pixel_mask]).max() <= 1, \
            'masked cells show the prediction'


def test_spectrum_columns():
    model = _tiny_model()
    batch = _raw_batch(n=2)
    grid = HOOKS.build(dict(type='ReconstructionVisHook', num_images=2,
                            spectrum=True)).make_grid(model, batch)
    assert grid.shape == (2 * (TILE + PAD) + PAD, 6 * (TILE + PAD) + PAD, 3)
    for row in range(2):
        original = _tile(grid, row, 0) / 255.
        # log amplitude spectrum of the original (not of the 8-bit tile: tolerance 2 levels)
        rgb = batch['inputs'][row].flip(0).numpy().astype(np.float64) / 255.
        amplitude = np.log1p(np.abs(np.fft.fftshift(np.fft.fft2(rgb),
                                                    axes=(-2, -1)))).mean(0)
        expected = (amplitude - amplitude.min()) / (amplitude.max() - amplitude.min())
        spectrum = _tile(grid, row, 4)
        assert (spectrum == spectrum[..., :1]).all(), 'grey tiles'
        assert np.abs(spectrum[..., 0] - expected * 255).max() <= 2
        assert spectrum[TILE // 2, TILE // 2, 0] == 255, 'the DC term is at the centre'
        pasted = _tile(grid, row, 3) / 255.
        pasted_amplitude = np.log1p(np.abs(np.fft.fftshift(np.fft.fft2(
            pasted.transpose(2, 0, 1)), axes=(-2, -1)))).mean(0)
        expected = np.clip((pasted_amplitude - amplitude.min())
                           / (amplitude.max() - amplitude.min()), 0, 1)
        assert np.abs(_tile(grid, row, 5)[..., 0] - expected * 255).max() <= 3, \
            'reconstruction spectrum on the scale of the original\'s'
        assert np.abs(original - rgb.transpose(1, 2, 0)).max() <= 1 / 255 + 1e-6


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
    assert picture.shape == (2 * 66 + 2, 4 * 66 + 2, 3)
    if with_tensorboard:
        assert list(Path(runner.log_dir).glob('vis_data/events.out.tfevents.*'))


def test_invalid_arguments():
    with pytest.raises(ValueError, match='interval and num_images'):
        HOOKS.build(dict(type='ReconstructionVisHook', interval=0))


VIS_CONFIG = '''
custom_imports = dict(imports=['a2mim_plugin'], allow_failed_imports=False)
model = dict(
    type='A2MIM',
    backbone=dict(type='A2MIMResNet', depth=18, mask_layer=3, mask_init=1e-6),
    neck=dict(type='A2MIMLinearDecoder', in_channels=512, encoder_stride=32),
    head=dict(type='A2MIMHead', loss=dict(type='FocalL1Loss')))
data_preprocessor = dict(type='SelfSupDataPreprocessor', mean={mean}, std={std}, to_rgb=True)
train_dataloader = dict(dataset=dict(type='CustomDataset', pipeline=[
    dict(type='LoadImageFromFile'),
    dict(type='RandomResizedCrop', scale=64),
    {generator}
    dict(type='PackInputs')]))
'''
GENERATOR = ("dict(type='SimMIMMaskGenerator', input_size=64, mask_patch_size=32, "
             "model_patch_size=16, mask_ratio=0.5),")


def _vis_tool():
    import importlib.util
    path = Path(__file__).resolve().parents[1] / 'tools' / 'visualize_reconstruction.py'
    spec = importlib.util.spec_from_file_location('visualize_reconstruction', path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_visualize_reconstruction_tool(tmp_path, photo_dataset, capsys):
    """The tool draws the hook's picture for a checkpoint with the config's mask generator."""
    config = tmp_path / 'a2mim_tiny.py'
    config.write_text(VIS_CONFIG.format(mean=MEAN, std=STD, generator=GENERATOR))
    model = _tiny_model()
    torch.save(dict(state_dict=model.state_dict(), meta=dict()), tmp_path / 'epoch_1.pth')
    photos = sorted((photo_dataset / 'train').glob('*/*.JPEG'))
    tool = _vis_tool()

    def draw(out, *extra):
        code = tool.main([str(config), str(tmp_path / 'epoch_1.pth'), str(photos[0]),
                          str(photo_dataset / 'train' / 'coffee'), '--num-images', '3',
                          '--device', 'cpu', '--out', str(out), *extra])
        assert code == 0
        return np.asarray(Image.open(out)).astype(int)

    picture = draw(tmp_path / 'a.png', '--spectrum')
    assert picture.shape == (3 * (TILE + PAD) + PAD, 6 * (TILE + PAD) + PAD, 3)
    assert 'columns: original / masked input / prediction / prediction + visible' in \
        capsys.readouterr().out
    for row in range(3):
        original, masked = _tile(picture, row, 0), _tile(picture, row, 1)
        blocks = [np.abs(original[y:y + 32, x:x + 32] - masked[y:y + 32, x:x + 32]).max() > 1
                  for y in (0, 32) for x in (0, 32)]
        assert sum(blocks) == 2, 'mask_ratio 0.5 of the 2 x 2 mask grid of the config'
        predicted = _tile(picture, row, 2)
        pasted = _tile(picture, row, 3)
        for k, (y, x) in enumerate([(0, 0), (0, 32), (32, 0), (32, 32)]):
            cell = (slice(y, y + 32), slice(x, x + 32))
            source = predicted if blocks[k] else original
            assert np.abs(pasted[cell] - source[cell]).max() <= 1
    np.testing.assert_array_equal(draw(tmp_path / 'b.png', '--spectrum'), picture)  # seeded
    other = draw(tmp_path / 'c.png', '--seed', '3')
    assert other.shape[1] == 4 * (TILE + PAD) + PAD
    assert not np.array_equal(other[:, :4 * (TILE + PAD)], picture[:, :4 * (TILE + PAD)])

    no_mask = tmp_path / 'no_mask.py'
    no_mask.write_text(VIS_CONFIG.format(mean=MEAN, std=STD, generator=''))
    assert tool.main([str(no_mask), str(tmp_path / 'epoch_1.pth'), str(photos[0]),
                      '--out', str(tmp_path / 'd.png')]) == 2
    assert 'train_dataloader.dataset.pipeline has no mask generator' in capsys.readouterr().err
