"""Tiny CPU versions of the ``projects/seg`` configs and independent checks of loaded weights."""
import copy
from pathlib import Path
from typing import Dict, Optional

import numpy as np
import torch
import torch.nn.functional as F
from mmengine.config import Config

from helpers import REPO_ROOT

SEG_CONFIGS = REPO_ROOT / 'projects' / 'seg' / 'configs'
EXPORT_TOOL = REPO_ROOT / 'tools' / 'export_backbone.py'
PRETRAIN_BASES = REPO_ROOT / 'configs' / '_base_' / 'models'

PRETRAIN_SIZE = 64  # pre-training crops
IMAGE_HW = (96, 128)  # dataset images (H, W)
NUM_LABELS = 4  # classes 1..4 in the PNGs; 0 (ADE's "other") and 255 are ignored

TINY_VIT_ARCH = dict(embed_dims=64, num_layers=4, num_heads=2, feedforward_channels=128)

# family -> (pre-training model base, backbone overrides, decoder in_channels, mask grid)
PRETRAIN_SPECS = {
    'resnet': ('a2mim_resnet50.py', dict(depth=18), 512, 16),
    'vit': ('a2mim_vit-small-p16.py',
            dict(arch=dict(_delete_=True, **TINY_VIT_ARCH), img_size=PRETRAIN_SIZE,
                 drop_path_rate=0.), 64, 16),
    'convnext': ('a2mim_convnext-small.py', dict(arch='atto'), 320, 32),
}


CROP = 80  # tiny crop; the ViT runs at 80 px (5x5 patches) after pre-training at 64 px (4x4)

CONFIGS = {
    'vit': 'upernet_a2mim-vit-base-p16_8xb2-160k_ade20k-512x512.py',
    'resnet': 'upernet_a2mim-resnet50_8xb2-160k_ade20k-512x512.py',
    'convnext': 'upernet_a2mim-convnext-small_8xb2-amp-160k_ade20k-512x512.py',
    'convnext-base': 'upernet_a2mim-convnext-base_8xb2-amp-160k_ade20k-512x512.py',
}

# family -> model overrides that make the real config tiny (the loading settings stay).
TINY_MODEL = {
    'vit': dict(
        backbone=dict(arch=dict(_delete_=True, **TINY_VIT_ARCH), img_size=CROP,
                      out_indices=(0, 1, 2, 3)),
        neck=dict(embed_dim=64),
        decode_head=dict(in_channels=[64, 64, 64, 64], channels=32),
        auxiliary_head=dict(in_channels=64, channels=16),
        test_cfg=dict(crop_size=(CROP, CROP), stride=(54, 54))),
    'resnet': dict(
        backbone=dict(depth=18),
        decode_head=dict(in_channels=[64, 128, 256, 512], channels=32),
        auxiliary_head=dict(in_channels=256, channels=16)),
    'convnext': dict(
        backbone=dict(arch='atto', drop_path_rate=0.1),
        decode_head=dict(in_channels=[40, 80, 160, 320], channels=32),
        auxiliary_head=dict(in_channels=160, channels=16),
        test_cfg=dict(crop_size=(CROP, CROP), stride=(54, 54))),
}


def _pipelines():
    scale = (4 * CROP, CROP)  # short side CROP, as (2048, 512) does for 512 crops
    train = [
        dict(type='LoadImageFromFile'),
        dict(type='LoadAnnotations', reduce_zero_label=True),
        dict(type='RandomResize', scale=scale, ratio_range=(0.5, 2.0), keep_ratio=True),
        dict(type='RandomCrop', crop_size=(CROP, CROP), cat_max_ratio=0.75),
        dict(type='RandomFlip', prob=0.5),
        dict(type='PhotoMetricDistortion'),
        dict(type='PackSegInputs')
    ]
    test = [
        dict(type='LoadImageFromFile'),
        dict(type='Resize', scale=scale, keep_ratio=True),
        dict(type='LoadAnnotations', reduce_zero_label=True),
        dict(type='PackSegInputs')
    ]
    return train, test


def write_tiny_seg_config(family: str, out: Path, data_root: Path, checkpoint: Path,
                          prefix: Optional[str] = None) -> Path:
    """A tiny CPU version of a ``projects/seg`` config, inheriting it through ``_base_``."""
    config = SEG_CONFIGS / CONFIGS[family]
    real = Config.fromfile(str(config))
    model = copy.deepcopy(TINY_MODEL[family])
    model['data_preprocessor'] = dict(size=(CROP, CROP))
    model['backbone']['init_cfg'] = dict(checkpoint=str(checkpoint))
    if prefix is not None:
        model['backbone']['init_cfg']['prefix'] = prefix
    optim_wrapper = copy.deepcopy(real.optim_wrapper.to_dict())
    optim_wrapper.update(type='OptimWrapper', _delete_=True)  # AmpOptimWrapper needs a GPU
    optim_wrapper.pop('loss_scale', None)
    train, test = _pipelines()

    def loader(split, batch_size, pipeline):
        return dict(batch_size=batch_size, num_workers=0, persistent_workers=False,
                    dataset=dict(data_root=str(data_root), pipeline=pipeline,
                                 data_prefix=dict(img_path=f'images/{split}',
                                                  seg_map_path=f'annotations/{split}')))

    out.write_text(f"""_base_ = {str(config)!r}
model = {model!r}
train_dataloader = {loader('training', 2, train)!r}
val_dataloader = {loader('validation', 1, test)!r}
test_dataloader = val_dataloader
optim_wrapper = {optim_wrapper!r}
train_cfg = dict(max_iters=2, val_interval=2)
default_hooks = dict(logger=dict(interval=1), checkpoint=dict(interval=2),
                     visualization=dict(draw=False))
env_cfg = dict(cudnn_benchmark=False)
randomness = dict(seed=0)
""")
    return out


def checkpoint_backbone(path: Path) -> Dict[str, torch.Tensor]:
    """The ``backbone.*`` tensors of a checkpoint, prefix stripped."""
    state = torch.load(path, map_location='cpu')  # weights-only, with the plugin allow-list
    state = state.get('state_dict', state)
    return {k[len('backbone.'):]: v for k, v in state.items() if k.startswith('backbone.')}


def bicubic_pos_embed(pos_embed: torch.Tensor, dst_grid: int) -> torch.Tensor:
    """Independent resize of a ``(1, 1 + g*g, C)`` position embedding: cls slot kept, grid
    part bicubically interpolated to ``dst_grid x dst_grid``."""
    cls_slot, grid = pos_embed[:, :1], pos_embed[:, 1:]
    src_grid = int(round(grid.shape[1]**0.5))
    grid = grid.reshape(1, src_grid, src_grid, -1).permute(0, 3, 1, 2)
    grid = F.interpolate(grid, size=(dst_grid, dst_grid), mode='bicubic', align_corners=False)
    return torch.cat([cls_slot, grid.flatten(2).transpose(1, 2)], dim=1)


def beit_rel_pos_table(table: torch.Tensor, dst_window: int) -> torch.Tensor:
    """Independent BEiT-scheme resize of a relative position bias table.

    The ``(2w-1)**2 + 3`` rows hold the offset grid and 3 cls rows (kept). The source offsets
    sit at the partial sums of ``1, q, q**2, ...`` with ``q`` solved exactly (Brent's method)
    so that they reach the target half-width; each head is then interpolated with a cubic
    not-a-knot spline on the regular grid (``RegularGridInterpolator``).
    """
    from scipy.interpolate import RegularGridInterpolator
    from scipy.optimize import brentq

    grid_rows, cls_rows = table[:-3], table[-3:]
    src = int(round(grid_rows.shape[0]**0.5))
    dst = 2 * dst_window - 1
    half_src, half_dst = src // 2, dst // 2
    q = brentq(lambda r: sum(r**i for i in range(half_src)) - half_dst, 1.0 + 1e-9, 1.5)
    offsets = np.cumsum([q**i for i in range(half_src)])
    src_axis = np.concatenate([-offsets[::-1], [0.], offsets])
    dst_axis = np.arange(-half_dst, half_dst + 1, dtype=np.float64)
    values = grid_rows.double().numpy().reshape(src, src, -1)
    mesh = np.stack(np.meshgrid(dst_axis, dst_axis, indexing='ij'), axis=-1).reshape(-1, 2)
    heads = [RegularGridInterpolator((src_axis, src_axis), values[..., h], method='cubic',
                                       bounds_error=False, fill_value=None)(mesh)
             for h in range(values.shape[-1])]
    resized = torch.from_numpy(np.stack(heads, axis=1)).to(table.dtype)
    return torch.cat([resized, cls_rows], dim=0)


# Module keys that the segmentation backbones create fresh by design.
NEW_KEYS = {
    'vit': lambda k: k.endswith('attn.relative_position_index'),  # rebuilt for the new grid
    'resnet': lambda k: False,
    'convnext': lambda k: k.startswith(('norm0.', 'norm1.', 'norm2.')),  # stage norms
}
# Checkpoint keys the segmentation backbones do not use by design.
DROPPED_KEYS = {
    'vit': {'mask_token', 'ln1.weight', 'ln1.bias'},  # final_norm=False drops the final norm
    'resnet': {'mask_token', 'mask_gamma'},
    'convnext': {'mask_token', 'mask_gamma'},
}


def assert_backbone_matches_checkpoint(family, state, ckpt):
    """Every backbone tensor equals the checkpoint's (resized ones: the independent resize)."""
    ckpt = dict(ckpt)
    for key in DROPPED_KEYS[family]:
        ckpt.pop(key, None)
    fresh = {k for k in state if NEW_KEYS[family](k)}
    assert set(state) - fresh == set(ckpt) - fresh, (
        sorted(set(state) ^ set(ckpt)))
    if family == 'vit':
        grid = CROP // 16
        expected = bicubic_pos_embed(ckpt.pop('pos_embed'), grid)
        assert state['pos_embed'].shape == (1, 1 + grid * grid, 64)
        torch.testing.assert_close(state['pos_embed'], expected, rtol=0, atol=1e-6)
        assert torch.equal(state['pos_embed'][:, 0], expected[:, 0])  # cls slot untouched
        tables = [k for k in ckpt if k.endswith('relative_position_bias_table')]
        assert len(tables) == 4
        for key in tables:
            src = ckpt.pop(key)
            assert src.shape[0] == (2 * (PRETRAIN_SIZE // 16) - 1)**2 + 3
            assert state[key].shape[0] == (2 * grid - 1)**2 + 3
            torch.testing.assert_close(state[key], beit_rel_pos_table(src, grid), rtol=0,
                                       atol=1e-4)
            assert torch.equal(state[key][-3:], src[-3:])  # cls rows kept
            centre_src, centre_dst = (src.shape[0] - 3) // 2, (state[key].shape[0] - 3) // 2
            torch.testing.assert_close(state[key][centre_dst], src[centre_src])  # offset 0
    for key, value in ckpt.items():
        if key in state and not NEW_KEYS[family](key):
            assert torch.equal(state[key], value), key
