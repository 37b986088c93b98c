"""Pre-training on your own images (docs/custom_data.md) through MMEngine's runner.

* the ``configs/custom_data`` templates train on a flat and on a nested folder with only
  ``data_root`` changed, and keep the model / optimiser / pipeline of their ImageNet configs;
* the documented ``--cfg-options`` form turns a published ImageNet config onto a folder (and
  the naive ``type=CustomDataset`` form fails the way the docs say);
* 1-channel (grayscale PNG) and 4+-channel (RGBA PNG, 5-band uint16 TIFF) images go through
  the real pipeline, the per-channel normalisation, the per-channel mean fill, the mask token,
  a C-channel decoder and the losses;
* non-square crops (64 x 96) train a ResNet and a ViT with ``SimMIMRectMaskGenerator``.
Tiny data (a few generated images) and 2-3 iterations each.
"""
import argparse
import copy
from pathlib import Path
from typing import Dict, List, Tuple

import numpy as np
import pytest
import torch
from mmengine.config import Config, DictAction
from mmengine.runner import Runner
from mmpretrain.datasets.transforms import SimMIMMaskGenerator
from mmpretrain.registry import TRANSFORMS
from PIL import Image

from a2mim_plugin.models.utils import upsample_mask

REPO = Path(__file__).resolve().parents[1]
TEMPLATES = REPO / 'configs' / 'custom_data'
RESNET_TEMPLATE = TEMPLATES / 'a2mim_resnet50_8xb256-coslr-300e_custom.py'
VIT_TEMPLATE = TEMPLATES / 'a2mim_vit-base-p16_8xb128-accu2-step-800e_custom.py'
IN1K = {RESNET_TEMPLATE: REPO / 'configs/a2mim/a2mim_resnet50_8xb256-coslr-300e_in1k.py',
        VIT_TEMPLATE: REPO / 'configs/a2mim/a2mim_vit-base-p16_8xb128-accu2-step-800e_in1k.py'}

# Speed only: ResNet-18 at 64 px, batch 2, one epoch, no workers. The data part is untouched.
FAST = {
    'model.backbone.depth': 18, 'model.neck.in_channels': 512,
    'train_dataloader.dataset.pipeline.1.scale': 64,
    'train_dataloader.dataset.pipeline.3.input_size': 64,
    'train_dataloader.batch_size': 2, 'train_dataloader.num_workers': 0,
    'train_dataloader.persistent_workers': False, 'train_cfg.max_epochs': 1,
    'default_hooks.logger.interval': 1, 'default_hooks.checkpoint.interval': 100,
}


def _write_rgb(root: Path, names: List[str], seed: int = 0) -> List[Path]:
    rng = np.random.default_rng(seed)
    paths = []
    for i, name in enumerate(names):
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 256, (70 + 6 * i, 90, 3), dtype=np.uint8)).save(path)
        paths.append(path)
    return paths


class _Losses:
    """Records the model's loss terms at every training step."""

    def __init__(self, model) -> None:
        self.records: List[Dict[str, float]] = []
        self._loss = model.loss
        model.loss = self

    def __call__(self, inputs, data_samples, **kwargs):
        losses = self._loss(inputs, data_samples, **kwargs)
        self.records.append({k: float(v.detach()) for k, v in losses.items()})
        return losses


def _image_paths(runner: Runner) -> List[Path]:
    dataset = runner.train_dataloader.dataset
    return sorted(Path(dataset.get_data_info(i)['img_path']) for i in range(len(dataset)))


def _train(cfg: Config, work_dir: Path) -> Tuple[Runner, _Losses]:
    cfg.work_dir = str(work_dir)
    runner = Runner.from_cfg(cfg)
    losses = _Losses(runner.model)
    runner.train()
    return runner, losses


# ------------------------------------------------------------------------------------------
# Templates for a folder of images
LAYOUTS = {
    'flat': ['a.jpg', 'b.png', 'c.JPEG', 'd.bmp', 'e.tif'],
    'nested': ['site1/a.jpg', 'site1/day2/b.png', 'site2/c.JPEG', 'd.bmp', 'x/y/z/e.tif'],
}


@pytest.mark.parametrize('layout', list(LAYOUTS))
def test_resnet_template_trains_on_a_folder_with_only_data_root_changed(layout, tmp_path):
    images = _write_rgb(tmp_path / 'images', LAYOUTS[layout])
    (tmp_path / 'images' / 'notes.txt').write_text('not an image')
    cfg = Config.fromfile(RESNET_TEMPLATE)
    cfg.merge_from_dict({'train_dataloader.dataset.data_root': str(tmp_path / 'images'), **FAST})
    runner, losses = _train(cfg, tmp_path / 'work')
    assert _image_paths(runner) == sorted(images)
    assert runner.iter == 3  # 5 images, batch 2, one epoch
    assert len(losses.records) == 3
    for record in losses.records:
        assert set(record) == {'loss_spatial', 'loss_fourier'}
        assert all(np.isfinite(v) and v > 0 for v in record.values())


@pytest.mark.parametrize('template', [RESNET_TEMPLATE, VIT_TEMPLATE], ids=['resnet50', 'vit-b'])
def test_templates_keep_the_imagenet_recipe_and_change_only_the_data(template):
    custom, in1k = Config.fromfile(template), Config.fromfile(IN1K[template])
    for key in ('model', 'optim_wrapper', 'param_scheduler', 'train_cfg', 'auto_scale_lr',
                'custom_hooks'):
        assert custom[key] == in1k[key], key
    # All runtime hooks but the k-NN evaluation, which needs labelled ImageNet splits.
    assert custom.default_hooks.pop('knn_eval') == dict(in1k.default_hooks.knn_eval, enabled=False)
    assert custom.default_hooks == {k: v for k, v in in1k.default_hooks.items() if k != 'knn_eval'}
    data, in1k_data = custom.train_dataloader, in1k.train_dataloader
    assert data.dataset.pipeline == in1k_data.dataset.pipeline
    assert {k: v for k, v in data.items() if k != 'dataset'} == \
        {k: v for k, v in in1k_data.items() if k != 'dataset'}
    assert dict(data.dataset, pipeline=None) == dict(
        type='CustomDataset', data_root='data/my_images', with_label=False, pipeline=None)


def test_vit_template_trains_on_a_nested_folder(tmp_path):
    images = _write_rgb(tmp_path / 'images', LAYOUTS['nested'][:4])
    cfg = Config.fromfile(VIT_TEMPLATE)
    cfg.model.backbone.arch = dict(embed_dims=64, num_layers=2, num_heads=2,
                                   feedforward_channels=128)
    cfg.merge_from_dict({
        'train_dataloader.dataset.data_root': str(tmp_path / 'images'),
        'model.backbone.img_size': 64, 'model.neck.in_channels': 64,
        **{k: v for k, v in FAST.items() if not k.startswith(('model.', 'train_dataloader.bat'))},
        'train_dataloader.batch_size': 2})
    runner, losses = _train(cfg, tmp_path / 'work')
    assert len(runner.train_dataloader.dataset) == len(images) == 4
    assert runner.iter == 2 and len(losses.records) == 2
    assert all(np.isfinite(r['loss_spatial']) and r['loss_spatial'] > 0 for r in losses.records)


# ------------------------------------------------------------------------------------------
# A published ImageNet config on a folder, from the command line
def _cfg_options(*options: str) -> dict:
    """``--cfg-options`` parsed exactly as MMPretrain's tools/train.py parses them."""
    parser = argparse.ArgumentParser()
    parser.add_argument('--cfg-options', nargs='+', action=DictAction)
    return parser.parse_args(['--cfg-options', *options]).cfg_options


IN1K_RESNET = REPO / 'configs/a2mim/a2mim_resnet50_8xb256-coslr-300e_in1k.py'


def test_in1k_config_trains_on_a_folder_with_the_documented_cfg_options(tmp_path):
    images = _write_rgb(tmp_path / 'images', LAYOUTS['nested'][:3])
    cfg = Config.fromfile(IN1K_RESNET)
    options = _cfg_options(f'train_dataloader.dataset.data_root={tmp_path / "images"}',
                           'train_dataloader.dataset.split=None',
                           'train_dataloader.dataset.with_label=False',
                           'default_hooks.knn_eval.enabled=False')
    assert options['train_dataloader.dataset.split'] is None
    cfg.merge_from_dict(options)
    cfg.merge_from_dict(FAST)
    runner, losses = _train(cfg, tmp_path / 'work')
    assert _image_paths(runner) == sorted(images)
    assert runner.iter == 2 and len(losses.records) == 2


def test_switching_the_in1k_config_to_custom_dataset_fails_on_split(tmp_path):
    """The form new users try first; docs/custom_data.md explains it and gives the fix."""
    _write_rgb(tmp_path / 'images', ['a.png'])
    cfg = Config.fromfile(IN1K_RESNET)
    cfg.merge_from_dict(_cfg_options('train_dataloader.dataset.type=CustomDataset',
                                     f'train_dataloader.dataset.data_root={tmp_path / "images"}',
                                     'train_dataloader.dataset.with_label=False',
                                     'default_hooks.knn_eval.enabled=False'))
    cfg.merge_from_dict(FAST)
    cfg.work_dir = str(tmp_path / 'work')
    runner = Runner.from_cfg(cfg)
    with pytest.raises(TypeError, match="unexpected keyword argument 'split'"):
        runner.train()


# ------------------------------------------------------------------------------------------
# Channels other than RGB
def _tiny_cfg(data_root: Path, channels: int, load: dict, preprocessor: dict,
              backbone: dict, mask_token=None, crop=64, mask_cell=16,
              mask_gen='SimMIMMaskGenerator', resize_backend='cv2') -> Config:
    """A tiny A2MIM config for ``channels``-channel images (everything else stock)."""
    model = dict(
        type='A2MIM', data_preprocessor=preprocessor, backbone=backbone,
        neck=dict(type='A2MIMLinearDecoder', in_channels=512, encoder_stride=32,
                  out_channels=channels),
        head=dict(type='A2MIMHead', loss=dict(type='FocalL1Loss'), encoder_in_channels=channels,
                  fft_weight=0.5, fft_focal=True, fft_unmask_replace='mixed',
                  fft_unmask_weight=1e-3))
    if mask_token is not None:
        model['mask_token'] = mask_token
    return Config(dict(
        default_scope='mmpretrain',
        custom_imports=dict(imports=['a2mim_plugin'], allow_failed_imports=False),
        model=model,
        train_dataloader=dict(
            batch_size=2, num_workers=0, sampler=dict(type='DefaultSampler', shuffle=False),
            collate_fn=dict(type='default_collate'),
            dataset=dict(type='CustomDataset', data_root=str(data_root), with_label=False,
                         extensions=('.png', '.tif', '.tiff'),
                         pipeline=[load,
                                   dict(type='RandomResizedCrop', scale=crop,
                                        crop_ratio_range=(0.8, 1.0), backend=resize_backend),
                                   dict(type='RandomFlip', prob=0.5),
                                   dict(type=mask_gen, input_size=crop, mask_patch_size=32,
                                        model_patch_size=mask_cell, mask_ratio=0.6),
                                   dict(type='PackInputs')])),
        optim_wrapper=dict(type='OptimWrapper', optimizer=dict(type='AdamW', lr=1e-3)),
        train_cfg=dict(type='EpochBasedTrainLoop', max_epochs=1),
        default_hooks=dict(logger=dict(type='LoggerHook', interval=1)),
        custom_hooks=[dict(type='MaskPipelineCheckHook'), dict(type='NonFiniteLossHook')],
        randomness=dict(seed=0)))


def _first_batch(runner: Runner):
    """The first training batch after the data preprocessor: (inputs, masks, raw inputs)."""
    data = next(iter(runner.train_dataloader))
    raw = torch.stack(list(data['inputs'])) if isinstance(data['inputs'], list) \
        else data['inputs']
    out = runner.model.data_preprocessor(copy.deepcopy(data), True)
    masks = torch.stack([s.mask for s in out['data_samples']])
    return out['inputs'], masks, raw


def _check_channels_run(runner: Runner, losses: _Losses, channels: int, mean, std) -> None:
    inputs, masks, raw = _first_batch(runner)
    assert raw.shape[1] == channels and inputs.shape[1] == channels
    # Per-channel normalisation with C values.
    expected = (raw.float() - torch.tensor(mean).view(-1, 1, 1)) / torch.tensor(std).view(-1, 1, 1)
    torch.testing.assert_close(inputs, expected)
    # The fill: each masked pixel holds its image's own mean of that channel.
    model = runner.model
    filled = model.masked_input(inputs, masks)
    pixel = upsample_mask(masks, inputs.shape[-2:]).bool().expand_as(inputs)
    means = inputs.mean(dim=(2, 3), keepdim=True).expand_as(inputs)
    assert torch.equal(filled[pixel], means[pixel]) and torch.equal(filled[~pixel], inputs[~pixel])
    # The decoder predicts C channels; the spatial loss averages over them.
    with torch.no_grad():
        pred = model.reconstruct(inputs, masks)['pred']
    assert pred.shape == inputs.shape
    assert runner.iter == 2 and len(losses.records) == 2
    for record in losses.records:
        assert set(record) == {'loss_spatial', 'loss_fourier'}
        assert all(np.isfinite(v) and v > 0 for v in record.values())


def test_grayscale_images_train_with_one_channel(tmp_path):
    rng = np.random.default_rng(1)
    for i in range(4):
        Image.fromarray(rng.integers(0, 256, (72, 80), dtype=np.uint8), mode='L').save(
            tmp_path / f'scan{i}.png')
    mean, std = [110.], [60.]
    cfg = _tiny_cfg(tmp_path, 1, dict(type='LoadImageFromFile', color_type='grayscale'),
                    dict(type='SelfSupDataPreprocessor', mean=mean, std=std, to_rgb=False),
                    dict(type='A2MIMResNet', depth=18, in_channels=1, mask_layer=3,
                         mask_init=1e-6))
    runner, losses = _train(cfg, tmp_path / 'work')
    assert runner.model.backbone.conv1.weight.shape[1] == 1
    _check_channels_run(runner, losses, 1, mean, std)


def _write_rgba_png(root: Path, count: int) -> None:
    rng = np.random.default_rng(2)
    for i in range(count):
        Image.fromarray(rng.integers(0, 256, (70, 76, 4), dtype=np.uint8), mode='RGBA').save(
            root / f'tile{i}.png')


def _write_multiband_tif(root: Path, count: int, bands: int = 5) -> None:
    import tifffile
    rng = np.random.default_rng(3)
    for i in range(count):
        tifffile.imwrite(root / f'tile{i}.tif',
                         rng.integers(0, 4096, (70, 76, bands), dtype=np.uint16),
                         photometric='minisblack', planarconfig='contig')


MULTI = {
    # 4-channel PNG read by OpenCV as stored (B, G, R, A order), the A2MIMResNet preset.
    'rgba-png-preset': dict(
        channels=4, write=_write_rgba_png,
        load=dict(type='LoadImageFromFile', color_type='unchanged'),
        mean=[100., 110., 120., 127.], std=[50., 55., 60., 70.],
        backbone=dict(type='A2MIMResNet', depth=18, in_channels=4, mask_layer=3,
                      mask_init=1e-6),
        mask_token=None, mask_cell=16, token_channels=256),
    # 5-band uint16 GeoTIFF-like tiles through tifffile, a stock ResNet with the generic token.
    'tif-5band-stock': dict(
        channels=5, write=_write_multiband_tif,
        load=dict(type='LoadImageFromFile', color_type='unchanged', imdecode_backend='tifffile'),
        mean=[2000., 2100., 1900., 2050., 2010.], std=[1100., 1200., 1150., 1180., 1190.],
        backbone=dict(type='ResNet', depth=18, in_channels=5),
        mask_token=dict(at='layer3', on='input', mask_init=1e-6), mask_cell=8,
        token_channels=128),
}


@pytest.mark.parametrize('name', list(MULTI))
def test_multichannel_images_train_with_per_channel_mean_and_std(name, tmp_path):
    case = MULTI[name]
    case['write'](tmp_path, 4)
    cfg = _tiny_cfg(tmp_path, case['channels'], case['load'],
                    dict(type='MultiChannelDataPreprocessor', mean=case['mean'], std=case['std']),
                    case['backbone'], mask_token=case['mask_token'], mask_cell=case['mask_cell'])
    runner, losses = _train(cfg, tmp_path / 'work')
    # The token has the feature width at its point (not the image channels).
    assert runner.model.backbone.mask_token.shape[1] == case['token_channels']
    _check_channels_run(runner, losses, case['channels'], case['mean'], case['std'])


def test_multichannel_preprocessor_matches_the_stock_one_for_rgb():
    from mmpretrain.registry import MODELS
    mean, std = [123.675, 116.28, 103.53], [58.395, 57.12, 57.375]
    data = {'inputs': torch.randint(0, 256, (2, 3, 8, 8), dtype=torch.uint8),
            'data_samples': None}
    ours = MODELS.build(dict(type='MultiChannelDataPreprocessor', mean=mean, std=std,
                             to_rgb=True))(copy.deepcopy(data))['inputs']
    stock = MODELS.build(dict(type='SelfSupDataPreprocessor', mean=mean, std=std,
                              to_rgb=True))(copy.deepcopy(data))['inputs']
    assert torch.equal(ours, stock)


# ------------------------------------------------------------------------------------------
# Non-square crops
@pytest.mark.parametrize('size', [64, (64, 64), (96, 96)])
def test_rect_mask_generator_equals_simmim_for_square_crops(size):
    side = size if isinstance(size, int) else size[0]
    ours = TRANSFORMS.build(dict(type='SimMIMRectMaskGenerator', input_size=size,
                                 mask_patch_size=32, model_patch_size=16, mask_ratio=0.6))
    stock = SimMIMMaskGenerator(input_size=side, mask_patch_size=32, model_patch_size=16,
                                mask_ratio=0.6)
    for seed in range(5):
        np.random.seed(seed)
        a = ours.transform({})['mask']
        np.random.seed(seed)
        b = stock.transform({})['mask']
        assert np.array_equal(a, b)


def test_rect_mask_generator_masks_the_ratio_of_blocks_of_a_wide_crop():
    gen = TRANSFORMS.build(dict(type='SimMIMRectMaskGenerator', input_size=(64, 160),
                                mask_patch_size=32, model_patch_size=16, mask_ratio=0.6))
    np.random.seed(0)
    mask = gen.transform({})['mask']
    assert mask.shape == (4, 10)
    blocks = mask[::2, ::2]  # one value per 32 px block, repeated 2x2 on the 16 px grid
    assert np.array_equal(mask, blocks.repeat(2, 0).repeat(2, 1))
    assert blocks.sum() == 6  # ceil(0.6 * 2 * 5)


NON_SQUARE = {
    'resnet': dict(backbone=dict(type='A2MIMResNet', depth=18, mask_layer=3, mask_init=1e-6),
                   neck_in=512, stride=32, mask_cell=16),
    'vit': dict(backbone=dict(type='A2MIMViT', arch=dict(embed_dims=64, num_layers=2,
                                                         num_heads=2, feedforward_channels=128),
                              img_size=(64, 96), patch_size=16),
                neck_in=64, stride=16, mask_cell=16),
}


@pytest.mark.parametrize('name', list(NON_SQUARE))
def test_non_square_crops_train(name, tmp_path):
    case = NON_SQUARE[name]
    _write_rgb(tmp_path, ['a.png', 'b.png', 'c.png', 'd.png'])
    mean, std = [123.675, 116.28, 103.53], [58.395, 57.12, 57.375]
    cfg = _tiny_cfg(tmp_path, 3, dict(type='LoadImageFromFile'),
                    dict(type='SelfSupDataPreprocessor', mean=mean, std=std, to_rgb=True),
                    case['backbone'], crop=(64, 96), mask_cell=case['mask_cell'],
                    mask_gen='SimMIMRectMaskGenerator')
    cfg.model.neck.update(in_channels=case['neck_in'], encoder_stride=case['stride'])
    runner, losses = _train(cfg, tmp_path / 'work')
    inputs, masks, _ = _first_batch(runner)
    assert inputs.shape == (2, 3, 64, 96) and masks.shape == (2, 4, 6)
    with torch.no_grad():
        pred = runner.model.reconstruct(inputs, masks)['pred']
    assert pred.shape == (2, 3, 64, 96)
    assert runner.iter == 2 and all(np.isfinite(r['loss_spatial']) for r in losses.records)


# ------------------------------------------------------------------------------------------
# RGB-only parts, refused through the runner before the first step
def test_gray_pipeline_with_the_rgb_model_is_refused_before_training(tmp_path):
    """A 3-value normalisation would broadcast 1-channel images to 3 channels silently."""
    _write_rgb(tmp_path, ['a.png', 'b.png'])
    cfg = _tiny_cfg(tmp_path, 3, dict(type='LoadImageFromFile', color_type='grayscale'),
                    dict(type='SelfSupDataPreprocessor', mean=[0.] * 3, std=[1.] * 3),
                    dict(type='A2MIMResNet', depth=18, mask_layer=3))
    cfg.work_dir = str(tmp_path / 'work')
    runner = Runner.from_cfg(cfg)
    losses = _Losses(runner.model)
    with pytest.raises(ValueError, match=r"loads 1-channel images but the model is built for 3.*"
                                         r"set model\.backbone\.in_channels.* to 1 channels"):
        runner.train()
    assert losses.records == []


def test_multiband_tif_with_too_few_means_is_refused_at_the_first_batch(tmp_path):
    _write_multiband_tif(tmp_path, 2, bands=5)
    cfg = _tiny_cfg(tmp_path, 4, dict(type='LoadImageFromFile', color_type='unchanged',
                                      imdecode_backend='tifffile'),
                    dict(type='MultiChannelDataPreprocessor', mean=[0.] * 4, std=[1.] * 4),
                    dict(type='A2MIMResNet', depth=18, in_channels=4, mask_layer=3))
    cfg.work_dir = str(tmp_path / 'work')
    runner = Runner.from_cfg(cfg)
    with pytest.raises(ValueError, match=r'images have \[5\] channels but model\.data_preprocessor'
                                         r'\.mean/std have 4 values; set them'):
        runner.train()
