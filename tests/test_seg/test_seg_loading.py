"""A2MIM checkpoints load into the ``projects/seg`` backbones exactly, or the run stops.

The checkpoints come from tiny A2MIM pre-training runs in this session (``conftest.py``), both
as full runner checkpoints and as ``tools/export_backbone.py`` output. Values are compared
with ``torch.equal``; the ViT position embedding and relative position bias tables, which
are resized from the 4x4 pre-training grid to the 5x5 segmentation grid, are compared with
independent re-computations of the resize.
"""
import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.registry import init_default_scope
from mmseg.registry import MODELS

from seg_helpers import (CONFIGS, SEG_CONFIGS, TINY_VIT_ARCH,
                         assert_backbone_matches_checkpoint, beit_rel_pos_table,
                         bicubic_pos_embed, checkpoint_backbone, write_tiny_seg_config)

FAMILIES = ('vit', 'resnet', 'convnext')


def build_tiny_segmentor(family, tmp_path, data_root, checkpoint, prefix=None):
    config = write_tiny_seg_config(family, tmp_path / f'tiny_{family}.py', data_root,
                                   checkpoint, prefix=prefix)
    cfg = Config.fromfile(str(config))
    init_default_scope('mmseg')
    return cfg, MODELS.build(cfg.model)


@pytest.mark.parametrize('kind', ['full', 'exported'])
@pytest.mark.parametrize('family', FAMILIES)
def test_checkpoints_load_exactly(family, kind, tmp_path, seg_dataset, a2mim_checkpoints):
    checkpoint = a2mim_checkpoints[family][kind]
    _, model = build_tiny_segmentor(family, tmp_path, seg_dataset, checkpoint)
    model.init_weights()
    ckpt = checkpoint_backbone(checkpoint)
    assert ('mask_token' in ckpt) == (kind == 'full')
    assert_backbone_matches_checkpoint(family, model.backbone.state_dict(), ckpt)


@pytest.mark.parametrize('prefix', ['', 'encoder.'])
def test_wrong_prefix_is_an_error(prefix, tmp_path, seg_dataset, a2mim_checkpoints):
    """Both wrong prefixes stop with their own report, and both propose ``backbone.``."""
    checkpoint = a2mim_checkpoints['resnet']['full']
    _, model = build_tiny_segmentor('resnet', tmp_path, seg_dataset, checkpoint, prefix=prefix)
    with pytest.raises(RuntimeError, match=r'Pretrained\(strict=True\)') as error:
        model.init_weights()
    message = str(error.value)
    keys = list(torch.load(checkpoint, map_location='cpu')['state_dict'])
    module_keys = list(model.backbone.state_dict())
    hint = ("Likely fix: prefix='backbone.' ({} of the missing keys exist in the checkpoint "
            'under it), e.g. --cfg-options model.backbone.init_cfg.prefix=backbone.')
    if prefix:  # nothing starts with it: the error lists the checkpoint's prefixes
        assert f"no key of {checkpoint} starts with 'encoder.'" in message
        n_backbone = sum(k.startswith('backbone.') for k in keys)
        assert f"its keys start with 'backbone.' ({n_backbone})" in message
        assert "'neck.'" in message  # a full runner checkpoint: the decoder's keys too
        assert 'missing (' not in message
        assert hint.format(min(200, len(module_keys))) in message
    else:  # no prefix: every module key is missing, every checkpoint key unused
        n_unexpected = len([k for k in keys if not k.endswith(('mask_token', 'mask_gamma'))])
        # BatchNorm fills in an absent num_batches_tracked itself: not reported as missing
        n_missing = len([k for k in module_keys if not k.endswith('num_batches_tracked')])
        assert f'{n_missing} missing and {n_unexpected} unexpected keys' in message, \
            message[:400]
        assert f'missing ({n_missing}): conv1.weight, bn1.weight' in message
        assert f'unexpected ({n_unexpected}): backbone.' in message
        assert hint.format(n_missing) in message


def test_empty_checkpoint_is_an_error(tmp_path, seg_dataset):
    cfg = Config.fromfile(str(write_tiny_seg_config('resnet', tmp_path / 'cfg.py', seg_dataset,
                                                    checkpoint='')))
    init_default_scope('mmseg')
    model = MODELS.build(cfg.model)
    with pytest.raises(ValueError, match='init_cfg.checkpoint'):
        model.init_weights()


def test_dataset_labels_follow_ade20k_convention(seg_dataset):
    """The PNGs hold 0 (other), 1..4 and 255; ``reduce_zero_label`` maps them to 0..3 + 255."""
    from mmseg.datasets import ADE20KDataset

    init_default_scope('mmseg')
    dataset = ADE20KDataset(
        data_root=str(seg_dataset),
        data_prefix=dict(img_path='images/training', seg_map_path='annotations/training'),
        pipeline=[dict(type='LoadImageFromFile'),
                  dict(type='LoadAnnotations', reduce_zero_label=True)])
    assert len(dataset) == 4
    for i in range(len(dataset)):
        label = dataset[i]['gt_seg_map']
        values = set(np.unique(label).tolist())
        assert 255 in values and {0, 1, 2} <= values <= {0, 1, 2, 3, 255}, values
        assert (label[:4] == 255).all() and (label[:, -4:] == 255).all()  # "other" border


def test_vit_224_checkpoint_loads_into_the_512_grid(tmp_path):
    """The real ViT config's geometry: a 224-px (14x14) A2MIM ViT into the 512-px (32x32)
    backbone. A tiny width keeps it fast; grid sizes, flags and loading settings are real."""
    from mmpretrain.registry import MODELS as PRETRAIN_MODELS

    init_default_scope('mmpretrain')
    source = PRETRAIN_MODELS.build(dict(
        type='A2MIMViT', arch=TINY_VIT_ARCH, img_size=224, use_abs_pos_emb=True,
        use_rel_pos_bias=True, layer_scale_init_value=0.1, final_norm=True, out_type='featmap'))
    source.init_weights()
    with torch.no_grad():  # make the embeddings non-trivial
        source.pos_embed.normal_(std=0.5)
        for layer in source.layers:
            layer.attn.relative_position_bias_table.normal_(std=0.5)
    ckpt = {f'backbone.{k}': v for k, v in source.state_dict().items()}
    path = tmp_path / 'vit_224.pth'
    torch.save({'state_dict': ckpt}, path)

    cfg = Config.fromfile(str(SEG_CONFIGS / CONFIGS['vit']))
    backbone_cfg = cfg.model.backbone.to_dict()
    backbone_cfg.update(arch=TINY_VIT_ARCH, out_indices=(0, 1, 2, 3))
    backbone_cfg['init_cfg']['checkpoint'] = str(path)
    init_default_scope('mmseg')
    backbone = MODELS.build(backbone_cfg)
    backbone.init_weights()
    state = backbone.state_dict()
    expected_pos = bicubic_pos_embed(ckpt['backbone.pos_embed'], 32)
    assert state['pos_embed'].shape == (1, 1 + 32 * 32, 64)
    torch.testing.assert_close(state['pos_embed'], expected_pos, rtol=0, atol=1e-5)
    for i in range(TINY_VIT_ARCH['num_layers']):
        key = f'layers.{i}.attn.relative_position_bias_table'
        src = ckpt[f'backbone.{key}']
        assert src.shape[0] == 27 * 27 + 3 and state[key].shape[0] == 63 * 63 + 3
        torch.testing.assert_close(state[key], beit_rel_pos_table(src, 32), rtol=0, atol=1e-3)
        assert torch.equal(state[key][-3:], src[-3:])
    for key, value in state.items():
        if 'relative_position' not in key and key != 'pos_embed':
            assert torch.equal(value, ckpt[f'backbone.{key}']), key
