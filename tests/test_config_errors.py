"""Config mistakes end in a named error; a diverging run stops cleanly (NonFiniteLossHook).

Every bad config is built through the registry (or run through mmengine's ``Runner``) with tiny
models; each test asserts that the message names the config key to fix and the value to set.
"""
import math
import re
from pathlib import Path

import pytest
import torch
from mmengine.config import Config
from mmengine.optim import AmpOptimWrapper, OptimWrapper
from mmengine.runner import Runner
from mmpretrain.registry import MODELS, TRANSFORMS
from mmpretrain.structures import DataSample

from a2mim_plugin.engine.hooks import NonFiniteLossError, NonFiniteLossHook
from a2mim_plugin.models.utils.config_checks import check_decoder_fits_backbone
from helpers import write_tiny_config
from test_configs import TINY_BACKBONES, _load, _tiny_model_cfg

CONFIGS = Path(__file__).resolve().parents[1] / 'configs'
# One shipped pre-training config per backbone family (tiny versions).
FAMILIES = {
    'A2MIMResNet': CONFIGS / 'a2mim' / 'a2mim_resnet50_8xb256-coslr-300e_in1k.py',
    'A2MIMConvNeXt': CONFIGS / 'a2mim' / 'a2mim_convnext-tiny_8xb256-amp-coslr-300e_in1k.py',
    'A2MIMViT': CONFIGS / 'a2mim' / 'a2mim_vit-small-p16_8xb256-step-800e_in1k.py',
    'SwinTransformer': CONFIGS / 'a2mim' /
    'a2mim_swin-tiny-w6_8xb128-accu2-coslr-100e_in1k-192px.py',
}
# Output stride of each family's last feature map.
STRIDES = {'A2MIMResNet': 32, 'A2MIMConvNeXt': 32, 'A2MIMViT': 16, 'SwinTransformer': 32}


def _tiny(family: str) -> Config:
    return _tiny_model_cfg(_load(FAMILIES[family]))


def _build_error(model_cfg) -> str:
    with pytest.raises(ValueError) as info:
        MODELS.build(model_cfg)
    return str(info.value)


def _batch(model, size: int, mask_cfg: dict, n: int = 2):
    gen = TRANSFORMS.build(dict(type='SimMIMMaskGenerator', **mask_cfg))
    samples = [DataSample().set_mask(gen(dict(img=torch.zeros(size, size, 3).numpy()))['mask'])
               for _ in range(n)]
    inputs = torch.randint(0, 256, (n, 3, size, size)).float()
    return model.data_preprocessor(dict(inputs=inputs, data_samples=samples), training=True)


# ----------------------------------------------------------------------------- build time
@pytest.mark.parametrize('family', list(FAMILIES))
def test_decoder_stride_must_match_backbone(family):
    cfg = _tiny(family)
    cfg.model.neck.encoder_stride = 8
    msg = _build_error(cfg.model)
    assert 'model.neck.encoder_stride=8' in msg
    assert f'set model.neck.encoder_stride={STRIDES[family]}' in msg


@pytest.mark.parametrize('family', list(FAMILIES))
def test_decoder_channels_must_match_backbone(family):
    cfg = _tiny(family)
    channels = TINY_BACKBONES[family][1]
    cfg.model.neck.in_channels = channels + 1
    msg = _build_error(cfg.model)
    assert f'model.neck.in_channels={channels + 1}' in msg
    assert f'set model.neck.in_channels={channels}' in msg


@pytest.mark.parametrize('family', list(FAMILIES))
def test_geometry_check_leaves_rng_weights_buffers_and_modes_alone(family):
    """The build-time check runs the backbone, but a valid config keeps its numbers."""
    model = MODELS.build(_tiny(family).model)
    model.backbone.train()
    state = {k: v.clone() for k, v in model.state_dict().items()}
    rng = torch.random.get_rng_state()
    check_decoder_fits_backbone(model.backbone, model.neck)
    assert torch.equal(torch.random.get_rng_state(), rng)
    assert all(torch.equal(v, state[k]) for k, v in model.state_dict().items())
    assert all(m.training for m in model.backbone.modules())


def test_head_channels_must_match_decoder():
    cfg = _tiny('A2MIMResNet')
    cfg.model.head.encoder_in_channels = 1
    msg = _build_error(cfg.model)
    assert 'model.head.encoder_in_channels=1' in msg
    assert 'set model.head.encoder_in_channels=3' in msg


def test_fft_loss_without_focal_fourier_term():
    cfg = _tiny('A2MIMResNet')
    cfg.model.head.update(fft_focal=False, fft_loss=dict(type='FocalFrequencyLoss'))
    msg = _build_error(cfg.model)
    assert "model.head.fft_loss='FocalFrequencyLoss'" in msg
    assert 'model.head.fft_focal=False' in msg and 'set model.head.fft_focal=True' in msg


def test_fft_reweight_with_focal_loss():
    cfg = _tiny('A2MIMResNet')
    cfg.model.head.update(fft_focal=True, fft_reweight=True)
    msg = _build_error(cfg.model)
    assert 'fft_focal=False' in msg and 'fft_reweight=False' in msg


# ----------------------------------------------------------------------------- first batch
def test_vit_img_size_must_match_the_crop():
    cfg = _tiny('A2MIMViT')  # img_size=64
    model = MODELS.build(cfg.model)
    data = _batch(model, 32, dict(input_size=32, mask_patch_size=16, model_patch_size=16))
    with pytest.raises(ValueError, match='model.backbone.img_size=64') as info:
        model(**data, mode='loss')
    assert 'set model.backbone.img_size=32' in str(info.value)


@pytest.mark.parametrize('crop', [(64, 32), (32, 64)])
def test_vit_img_size_must_match_a_crop_in_both_sides(crop):
    """img_size=64 and a crop that matches it in one side only: refused, naming the crop."""
    model = MODELS.build(_tiny('A2MIMViT').model)  # img_size=64, patch 16
    h, w = crop
    samples = [DataSample().set_mask(torch.zeros(h // 16, w // 16)) for _ in range(2)]
    data = model.data_preprocessor(dict(inputs=torch.randint(0, 256, (2, 3, h, w)).float(),
                                        data_samples=samples), training=True)
    with pytest.raises(ValueError, match=r'model\.backbone\.img_size') as info:
        model(**data, mode='loss')
    assert f'{h}x{w}' in str(info.value)
    assert f'set model.backbone.img_size=({h}, {w})' in str(info.value)  # both sides, not 64


def test_model_patch_size_must_match_the_injection_stride():
    model = MODELS.build(_tiny('A2MIMResNet').model)  # mask_layer 3: stride 16
    data = _batch(model, 64, dict(input_size=64, mask_patch_size=32, model_patch_size=8))
    with pytest.raises(ValueError, match='model_patch_size'):
        model(**data, mode='loss')


# ----------------------------------------------------------------------------- runner
def _runner_cfg(tmp_path: Path, data_root: Path, **overrides) -> Config:
    cfg = Config.fromfile(write_tiny_config(tmp_path / 'tiny.py', data_root))
    cfg.work_dir = str(tmp_path / 'work')
    cfg.custom_hooks = [dict(type='NonFiniteLossHook')]
    cfg.train_dataloader.dataset.indices = 4
    cfg.merge_from_dict(overrides)
    return cfg


def test_pipeline_without_mask_generator_names_it(tmp_path, photo_dataset):
    cfg = _runner_cfg(tmp_path, photo_dataset)
    pipeline = cfg.train_dataloader.dataset.pipeline
    cfg.train_dataloader.dataset.pipeline = [
        t for t in pipeline if t['type'] != 'SimMIMMaskGenerator']
    cfg.train_cfg.max_iters = 1
    with pytest.raises(ValueError, match='SimMIMMaskGenerator') as info:
        Runner.from_cfg(cfg).train()
    assert 'data_samples[0].mask is missing' in str(info.value)
    assert 'train_dataloader.dataset.pipeline' in str(info.value)


@pytest.mark.parametrize('edit, key', [
    (dict(type='SimMIMMaskGenerator', drop=True), 'set train_dataloader.dataset.pipeline to'),
    (dict(type='SimMIMMaskGenerator', input_size=32), 'set SimMIMMaskGenerator.input_size=64'),
    (dict(type='RandomResizedCrop', scale=96), 'set SimMIMMaskGenerator.input_size=96'),
])
def test_mask_pipeline_check_hook(tmp_path, photo_dataset, edit, key):
    """Before the first iteration: the pipeline makes the mask, for the crop it produces."""
    cfg = _runner_cfg(tmp_path, photo_dataset)
    cfg.custom_hooks = [dict(type='MaskPipelineCheckHook')]
    edit = dict(edit)
    pipeline = []
    for t in cfg.train_dataloader.dataset.pipeline:
        if t['type'] == edit['type']:
            if edit.pop('drop', False):
                continue
            t = dict(t, **edit)
        pipeline.append(t)
    cfg.train_dataloader.dataset.pipeline = pipeline
    runner = Runner.from_cfg(cfg)
    runner.model.loss = None  # must not be reached
    with pytest.raises(ValueError, match=re.escape(key)):
        runner.train()
    assert runner.iter == 0


def _nan_at(runner: Runner, iteration: int, target: str) -> None:
    """Make the loss (``target='loss'``) or the gradient (``'grad'``) of 1-based
    ``iteration`` NaN, on this runner's model only."""
    model = runner.model
    head_loss = model.head.loss

    def loss(*args, **kwargs):
        losses = head_loss(*args, **kwargs)
        if runner.iter + 1 == iteration:
            if target == 'loss':
                losses['loss_fourier'] = losses['loss_fourier'] * float('nan')
            else:  # a finite loss whose gradient is NaN
                weight = model.backbone.conv1.weight
                handle = weight.register_hook(lambda g: (handle.remove(), g * math.nan)[1])
        return losses

    model.head.loss = loss


@pytest.mark.parametrize('target', ['loss', 'grad'])
def test_nan_stops_the_run_and_resume_from_last_good_works(tmp_path, photo_dataset, target):
    cfg = _runner_cfg(tmp_path, photo_dataset)
    runner = Runner.from_cfg(cfg)
    _nan_at(runner, 3, target)
    with pytest.raises(NonFiniteLossError) as info:
        runner.train()
    msg = str(info.value)
    work = Path(cfg.work_dir)
    good = str(work / 'iter_2.pth')
    assert 'at iteration 3' in msg and f'--resume {good}' in msg
    assert ('loss term loss_fourier=nan' in msg) if target == 'loss' else \
        ('gradient norm (nan)' in msg)
    assert all(torch.isfinite(p).all() for p in runner.model.parameters())
    assert sorted(p.name for p in work.glob('*.pth')) == ['iter_2.pth']

    cfg2 = _runner_cfg(tmp_path, photo_dataset, resume=True, load_from=good)
    resumed = Runner.from_cfg(cfg2)
    resumed.train()
    assert resumed.iter == 4 and (work / 'iter_4.pth').is_file()
    assert all(torch.isfinite(p).all() for p in resumed.model.parameters())


# ----------------------------------------------------------------------------- AMP decision
class _FakeRunner:
    def __init__(self, model, optim_wrapper, work_dir):
        self.model, self.optim_wrapper, self.work_dir = model, optim_wrapper, str(work_dir)
        self.iter, self.epoch = 5, 0


class _TinyModel(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.weight = torch.nn.Parameter(torch.ones(3))

    def parse_losses(self, losses):
        total = sum(losses.values())
        return total, dict(loss=total, **losses)


def _overflowing_step(wrapper, model) -> None:
    handle = model.weight.register_hook(lambda g: torch.full_like(g, math.inf))
    loss, _ = model.parse_losses(dict(loss_a=(model.weight * 2).sum()))
    wrapper.update_params(loss)
    handle.remove()


def test_amp_overflow_skipped_by_the_scaler_is_not_a_failure(tmp_path):
    model = _TinyModel()
    amp = AmpOptimWrapper.__new__(AmpOptimWrapper)  # the CPU cannot construct it normally
    OptimWrapper.__init__(amp, torch.optim.SGD(model.parameters(), lr=0.1))
    amp.loss_scaler = torch.amp.GradScaler('cpu', init_scale=2.**16)
    amp._scale_update_param = None
    hook = NonFiniteLossHook()
    hook.before_train(_FakeRunner(model, amp, tmp_path))
    _overflowing_step(amp, model)  # inf gradients: the scaler skips the step
    assert torch.equal(model.weight.detach(), torch.ones(3))
    assert amp.loss_scaler.get_scale() < 2.**16
    hook.after_train(None)
    assert 'parse_losses' not in vars(model) and 'step' not in vars(amp)


def test_non_amp_inf_gradient_is_a_failure(tmp_path):
    model = _TinyModel()
    wrapper = OptimWrapper(torch.optim.SGD(model.parameters(), lr=0.1))
    NonFiniteLossHook().before_train(_FakeRunner(model, wrapper, tmp_path))
    with pytest.raises(NonFiniteLossError, match=re.escape('gradient norm (inf)')) as info:
        _overflowing_step(wrapper, model)
    assert 'iteration 6' in str(info.value) and 'No checkpoint was saved yet' in str(info.value)
    assert torch.equal(model.weight.detach(), torch.ones(3))


def test_every_pretrain_config_has_the_hook():
    paths = [p for d in ('a2mim', 'simmim_baselines') for p in sorted((CONFIGS / d).glob('*.py'))]
    paths.append(CONFIGS / 'demo' / 'a2mim_resnet18_1xb16-coslr-30e_photos-128px.py')
    for path in paths:
        hooks = [h['type'] for h in Config.fromfile(path).get('custom_hooks', [])]
        assert 'NonFiniteLossHook' in hooks, path
