"""Plain-backbone features: pooling per output kind, class token, L2 norm, no mask applied."""
import pytest
import torch
import torch.nn.functional as F
from mmpretrain.registry import MODELS

from a2mim_plugin.evaluation import backbone_features, pool_output

PREPROCESSOR = dict(type='SelfSupDataPreprocessor', mean=[123.675, 116.28, 103.53],
                    std=[58.395, 57.12, 57.375], to_rgb=True)


def _vit(**backbone):
    return MODELS.build(dict(
        type='A2MIM', data_preprocessor=PREPROCESSOR,
        backbone=dict(type='A2MIMViT', arch=dict(embed_dims=32, num_layers=1, num_heads=2,
                                                 feedforward_channels=64),
                      img_size=32, patch_size=16, out_type='featmap', **backbone),
        neck=dict(type='A2MIMLinearDecoder', in_channels=32, encoder_stride=16, kernel_size=1),
        head=dict(type='A2MIMHead', loss=dict(type='ElementwiseL1Loss'))))


def test_vit_gives_its_normed_class_token_and_keeps_its_out_type():
    model = _vit().eval()
    x = torch.randn(3, 3, 32, 32)
    with torch.no_grad():
        feats = backbone_features(model, x)
        model.backbone.out_type = 'raw'
        raw = model.backbone(x)[-1]  # (B, 1 + 4, C), final norm applied
        model.backbone.out_type = 'featmap'
        avg = backbone_features(model, x, pool='avg')
        featmap = model.backbone(x)[-1]
    assert model.backbone.out_type == 'featmap'
    torch.testing.assert_close(feats, F.normalize(raw[:, 0], dim=1))
    torch.testing.assert_close(avg, F.normalize(featmap.mean(dim=(2, 3)), dim=1))
    assert not torch.allclose(feats, avg)
    torch.testing.assert_close(feats.norm(dim=1), torch.ones(3))


def test_cnn_gives_the_mean_of_its_last_map_without_the_mask_token():
    model = MODELS.build(dict(
        type='A2MIM', data_preprocessor=PREPROCESSOR,
        backbone=dict(type='A2MIMResNet', depth=18, base_channels=8, mask_layer=3,
                      mask_init=1e-6, out_indices=(2, 3)),
        neck=dict(type='A2MIMLinearDecoder', in_channels=64, encoder_stride=32),
        head=dict(type='A2MIMHead', loss=dict(type='FocalL1Loss')))).eval()
    with torch.no_grad():
        model.backbone.mask_token.fill_(100.)  # would dominate if it were applied
        x = torch.randn(2, 3, 64, 64)
        feats = backbone_features(model, x)
        want = model.backbone(x)[-1].mean(dim=(2, 3))
    torch.testing.assert_close(feats, F.normalize(want, dim=1))
    with pytest.raises(ValueError, match="has no class token; use pool='avg'"):
        backbone_features(model, x, pool='cls')


def test_pool_output_kinds():
    seq = torch.randn(2, 5, 4)
    assert torch.equal(pool_output((seq, ), 'cls'), seq[:, 0])
    torch.testing.assert_close(pool_output(seq, 'avg', num_extra_tokens=1),
                               seq[:, 1:].mean(dim=1))
    vec = torch.randn(2, 4)
    assert torch.equal(pool_output([vec], 'avg'), vec)
    with pytest.raises(ValueError, match='cannot pool a backbone output of shape'):
        pool_output(torch.randn(2, 3, 4, 5, 6), 'avg')
