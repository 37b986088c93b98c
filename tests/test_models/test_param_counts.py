"""Parameter counts of the fine-tuning classifiers vs the A2MIM README ("params (M)" column).

Only parameters are counted; nothing runs forward. The ViTs are built on the meta device (no
memory, no init); the CNN constructors call ``.item()`` on a linspace, which the meta device
cannot do, so those two are built on the CPU (about a second in all).

Measured with MMPretrain 1.2.0:
* ViT-S (BEiTViT 'small' 768-d/8 layers, abs + per-layer rel pos, layer scale, fc_norm)
  + fc 768->1000: 48,825,832 (README 48.8M)
* ViT-B: 86,682,280 (README 86.7M)
* ViT-L: 304,632,296 (README 304.6M)
* ResNet-50 + fc 2048->1000: 25,557,032 (README 25.6M)
* ConvNeXt-S (final norm on the pooled vector) + fc 768->1000: 50,223,688 (README 50.2M)
"""
import pytest
import torch
from mmpretrain.registry import MODELS


def _count(module):
    return sum(p.numel() for p in module.parameters())


def _vit_classifier(arch, dims, backbone_type='BEiTViT', **extra):
    return dict(
        type='ImageClassifier',
        backbone=dict(type=backbone_type, arch=arch, img_size=224, patch_size=16,
                      use_abs_pos_emb=True, use_rel_pos_bias=True,
                      layer_scale_init_value=0.1, final_norm=False,
                      out_type='avg_featmap', **extra),
        head=dict(type='LinearClsHead', num_classes=1000, in_channels=dims))


@pytest.mark.parametrize('arch,dims,readme_m,measured', [
    ('small', 768, 48.8, 48_825_832),
    ('base', 768, 86.7, 86_682_280),
    ('large', 1024, 304.6, 304_632_296),
])
def test_vit_finetune_classifier_params(arch, dims, readme_m, measured):
    with torch.device('meta'):
        model = MODELS.build(_vit_classifier(arch, dims))
        # the A2MIM backbone in fine-tuning form: the same weights, no mask token
        a2mim = MODELS.build(_vit_classifier(arch, dims, backbone_type='A2MIMViT',
                                             mask_token=None))
    n = _count(model)
    assert abs(n / 1e6 - readme_m) / readme_m < 0.005
    assert n == measured
    assert _count(a2mim) == n
    # fc_norm (ln2) on the mean of patch tokens, no final norm
    assert hasattr(model.backbone, 'ln2') and not model.backbone.final_norm


def test_vit_small_is_the_768d_8_layer_arch():
    with torch.device('meta'):
        backbone = MODELS.build(dict(type='A2MIMViT', arch='small'))
    assert backbone.embed_dims == 768 and backbone.num_layers == 8
    assert backbone.layers[0].ffn.layers[0][0].out_features == 2304


def test_vit_pretraining_backbone_adds_only_the_mask_token():
    with torch.device('meta'):
        a2mim = MODELS.build(dict(type='A2MIMViT', arch='base'))
        plain = MODELS.build(dict(type='BEiTViT', arch='base', use_abs_pos_emb=True,
                                  use_rel_pos_bias=True, layer_scale_init_value=0.1,
                                  final_norm=True, out_type='featmap'))
    assert _count(a2mim) == _count(plain) + 768


def test_resnet50_classifier_params():
    model = MODELS.build(
        dict(type='ImageClassifier', backbone=dict(type='ResNet', depth=50),
             neck=dict(type='GlobalAveragePooling'),
             head=dict(type='LinearClsHead', num_classes=1000, in_channels=2048)))
    n = _count(model)
    assert abs(n / 1e6 - 25.6) / 25.6 < 0.005
    assert n == 25_557_032


def test_convnext_small_classifier_params():
    model = MODELS.build(
        dict(type='ImageClassifier',
             backbone=dict(type='ConvNeXt', arch='small', gap_before_final_norm=True),
             head=dict(type='LinearClsHead', num_classes=1000, in_channels=768)))
    n = _count(model)
    assert abs(n / 1e6 - 50.2) / 50.2 < 0.005
    assert n == 50_223_688
