"""The timm zoo: tiny timm models through MMPretrain's ``TIMMBackbone`` and where A2MIM's
token goes.

Each case is what a user writes: ``backbone=dict(type='TIMMBackbone', model_name=...,
features_only=True, ...)`` (timm's own keyword arguments shrink the model to run on the CPU)
and ``mask_token=dict(at='timm_model.<path>', on=...)``. ``features_only=True`` wraps CNNs in
timm's ``FeatureListNet`` (stage modules become direct children, ``stages.2`` is spelled
``stages_2``) and transformers, with ``feature_cls='getter'``, in ``FeatureGetterNet`` (the
model sits at ``timm_model.model`` and returns NCHW maps). No ``mask_token.input_size`` is
given: the dry run reads the size the timm model declares (``DECLARED_SIZE``). docs/timm.md
lists the same cases (``test_zoo_timm.py`` checks that they agree).
"""
from typing import Dict

from zoo_cases import ZooCase


def timm_backbone(model_name: str, **kwargs) -> dict:
    return dict(type='TIMMBackbone', model_name=model_name, features_only=True, **kwargs)


TRANSFORMER = dict(feature_cls='getter', img_size=64)

TIMM_ZOO: Dict[str, ZooCase] = {
    # ResNet: the input of layer4 is the official A2MIM ResNet point (mask_layer=3).
    'resnet18': ZooCase(timm_backbone('resnet18', out_indices=(4, )), 'timm_model.layer4',
                        'input', 16, (512, 32)),
    'resnet10t': ZooCase(timm_backbone('resnet10t', out_indices=(4, )), 'timm_model.layer3',
                         'input', 8, (512, 32)),
    'convnext_atto': ZooCase(timm_backbone('convnext_atto', out_indices=(3, )),
                             'timm_model.stages_3', 'input', 16, (320, 32)),
    'efficientnet_b0': ZooCase(timm_backbone('efficientnet_b0', out_indices=(4, )),
                               'timm_model.blocks.4', 'input', 16, (320, 32)),
    'regnetx_002': ZooCase(timm_backbone('regnetx_002', out_indices=(4, )), 'timm_model.s3',
                           'input', 8, (368, 32)),
    # ViT: after the patch embedding (NLC, no class token yet), features as NCHW maps.
    'vit_tiny_patch16_224': ZooCase(timm_backbone(
        'vit_tiny_patch16_224', out_indices=(1, ), depth=2, embed_dim=64, num_heads=2,
        **TRANSFORMER), 'timm_model.model.patch_embed', 'output', 16, (64, 16)),
    # Swin: timm's patch embedding and stages are channels-last (NHWC).
    'swin_tiny_patch4_window7_224': ZooCase(timm_backbone(
        'swin_tiny_patch4_window7_224', out_indices=(3, ), embed_dim=24, depths=(1, 1, 1, 1),
        num_heads=(1, 1, 2, 2), window_size=2, **TRANSFORMER),
        'timm_model.model.patch_embed', 'output', 4, (192, 32)),
}

# What the dry run takes as the input size when mask_token.input_size is not set: the img_size
# the ViT / Swin was built with, else the model's pretrained_cfg['input_size'].
DECLARED_SIZE: Dict[str, int] = {
    'resnet18': 224, 'resnet10t': 176, 'convnext_atto': 224, 'efficientnet_b0': 224,
    'regnetx_002': 224, 'vit_tiny_patch16_224': 64, 'swin_tiny_patch4_window7_224': 64,
}
