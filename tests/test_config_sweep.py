"""Every shipped pre-training config x the edits users make: one step runs, or a named error.

Each case takes the tiny version of a config (``tests/test_configs.py``), applies one common edit
(another crop with the matching mask generator, another depth, another mask layer with the
matching ``model_patch_size``, batch size 1), builds the model through the registry, makes the
batch with the config's own ``SimMIMMaskGenerator`` and runs one ``train_step``. The outcome must
be the expected one: a step with finite loss and gradients, or an error raised by plugin code
whose message names the config key to set -- never a raw traceback from torch or MMPretrain.
"""
import traceback
from pathlib import Path
from typing import Callable, Dict, Optional, Tuple

import pytest
import torch
from mmengine.config import Config
from mmengine.optim import OptimWrapper
from mmpretrain.registry import MODELS, TRANSFORMS
from mmpretrain.structures import DataSample

from test_configs import PRETRAIN_CONFIGS, _load, _tiny_model_cfg, _tiny_pipeline

PLUGIN_DIR = str(Path(__file__).resolve().parents[1] / 'a2mim_plugin')
DEMO = Path(__file__).resolve().parents[1] / 'configs' / 'demo' / \
    'a2mim_resnet18_1xb16-coslr-30e_photos-128px.py'
SWEEP_CONFIGS = PRETRAIN_CONFIGS + [DEMO]


def _transform(cfg: Config, type_name: str) -> dict:
    return next(t for t in cfg.train_dataloader.dataset.pipeline if t['type'] == type_name)


def _crop(size: int) -> Callable[[Config], None]:
    def edit(cfg: Config) -> None:
        _transform(cfg, 'RandomResizedCrop')['scale'] = size
        _transform(cfg, 'SimMIMMaskGenerator')['input_size'] = size
    return edit


def _depth(cfg: Config) -> None:
    backbone = cfg.model.backbone
    if backbone.type == 'A2MIMResNet':
        backbone.depth = 34  # same 512 output channels as the tiny ResNet-18
    elif backbone.type == 'A2MIMConvNeXt':
        backbone.arch = 'femto'  # 384 output channels: the decoder must follow
    elif backbone.type == 'A2MIMViT':
        backbone.arch.num_layers = 3
    else:
        backbone.arch.depths = [1, 1, 2, 1]


def _mask_layer(cfg: Config) -> None:
    backbone, mask_gen = cfg.model.backbone, _transform(cfg, 'SimMIMMaskGenerator')
    if backbone.type == 'A2MIMResNet':
        backbone.mask_layer, mask_gen['model_patch_size'] = 2, 8
    elif backbone.type == 'A2MIMConvNeXt':
        backbone.mask_layer, mask_gen['model_patch_size'] = 2, 16
    elif backbone.type == 'A2MIMViT':
        backbone.mask_layer = 1  # a later block: same 16 px patches
    else:
        cfg.model.mask_token.update(at='stages.1', on='input')
        mask_gen['model_patch_size'] = 8


def _batch_one(cfg: Config) -> None:
    cfg.train_dataloader.batch_size = 1


EDITS: Dict[str, Callable[[Config], None]] = {
    'crop96': _crop(96),
    'depth': _depth,
    'mask_layer': _mask_layer,
    'batch1': _batch_one,
}
# Expected named errors (by family and edit); every other case must run one step.
EXPECTED_ERRORS = {
    ('A2MIMViT', 'crop96'): 'set model.backbone.img_size=96',
    ('A2MIMConvNeXt', 'depth'): 'set model.neck.in_channels=384',
}


def _family(cfg: Config) -> str:
    return cfg.model.backbone.type


def _one_step(cfg: Config) -> Tuple[Dict[str, float], torch.nn.Module, Dict]:
    model = MODELS.build(cfg.model)
    model.init_weights()
    pipeline = cfg.train_dataloader.dataset.pipeline
    crop = next(t for t in pipeline if t['type'] == 'RandomResizedCrop')['scale']
    mask_gen = TRANSFORMS.build(next(t for t in pipeline if t['type'] == 'SimMIMMaskGenerator'))
    n = max(1, min(2, cfg.train_dataloader.batch_size))
    samples = [DataSample().set_mask(mask_gen(dict(img=torch.zeros(crop, crop, 3).numpy()))
                                     ['mask']) for _ in range(n)]
    data = dict(inputs=torch.randint(0, 256, (n, 3, crop, crop)).float(), data_samples=samples)
    wrapper = OptimWrapper(torch.optim.SGD(model.parameters(), lr=1e-3))
    before = {name: p.detach().clone() for name, p in model.named_parameters()}
    log_vars = model.train_step(data, wrapper)
    return {k: float(v) for k, v in log_vars.items()}, model, before


def _raised_by_plugin(err: BaseException) -> bool:
    frames = traceback.extract_tb(err.__traceback__)
    return bool(frames) and frames[-1].filename.startswith(PLUGIN_DIR)


@pytest.mark.parametrize('edit', list(EDITS))
@pytest.mark.parametrize('path', SWEEP_CONFIGS, ids=lambda p: p.stem)
def test_edit_runs_or_names_the_key(path, edit):
    cfg = _tiny_model_cfg(_load(path))
    cfg.train_dataloader.dataset.pipeline = _tiny_pipeline(cfg.train_dataloader.dataset.pipeline)
    EDITS[edit](cfg)
    expected: Optional[str] = EXPECTED_ERRORS.get((_family(cfg), edit))
    try:
        log_vars, model, before = _one_step(cfg)
    except Exception as err:  # noqa: BLE001 -- the test is about which error
        assert expected is not None, f'{edit} should run, got {type(err).__name__}: {err}'
        assert _raised_by_plugin(err), ''.join(traceback.format_exception(err))
        assert expected in str(err), str(err)
        return
    assert expected is None, f'{edit} should fail with "{expected}", ran: {log_vars}'
    assert all(torch.isfinite(torch.tensor(v)) for v in log_vars.values()), log_vars
    params = dict(model.named_parameters())
    assert all(torch.isfinite(p).all() for p in params.values())
    assert not torch.equal(params['backbone.mask_token'], before['backbone.mask_token'])
