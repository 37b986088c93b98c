"""The backbone zoo: tiny stock MMPretrain 1.2.0 backbones and where A2MIM's token goes.

Each case is what a user writes in a config: the stock backbone (shrunk to run on the CPU in
well under a second), ``mask_token=dict(at=..., on=...)`` and the decoder's ``in_channels`` /
``encoder_stride``; plus the stride of the point, which is the ``model_patch_size`` of
``SimMIMMaskGenerator``. The stride of a point is a property of the architecture, the same for
the tiny variants at 64 px as for the published ones at 224 px. The zoo table of
``docs/backbones.md`` lists the same cases (``test_zoo.py`` checks that they agree).
"""
from dataclasses import dataclass
from typing import Dict, Tuple


@dataclass(frozen=True)
class ZooCase:
    """One stock backbone with its injection point.

    Attributes:
        backbone: the stock backbone config (tiny).
        at: module path of the point (``get_submodule`` syntax).
        on: 'input' or 'output' of that module.
        stride: input pixels per feature cell at the point (``model_patch_size``).
        decoder: ``(in_channels, encoder_stride)`` of ``A2MIMLinearDecoder``.
        size: side of the test images.
    """

    backbone: dict
    at: str
    on: str
    stride: int
    decoder: Tuple[int, int]
    size: int = 64


VIT = dict(embed_dims=64, num_layers=2, num_heads=2, feedforward_channels=128)
STAGES4 = dict(embed_dims=16, depths=[1, 1, 1, 1], num_heads=[1, 1, 2, 2])
TWINS = dict(embed_dims=[16, 32, 64, 128], depths=[1, 1, 1, 1], num_heads=[1, 1, 2, 2],
             patch_sizes=[4, 2, 2, 2], strides=[4, 2, 2, 2], mlp_ratios=[2, 2, 2, 2],
             sr_ratios=[4, 2, 1, 1])
METAFORMER = dict(layers=[1, 1, 1, 1], embed_dims=[16, 32, 64, 128], mlp_ratios=[4, 4, 4, 4],
                  layer_scale_init_value=1e-5)
RESNEXT = dict(depth=50, groups=4, width_per_group=4, base_channels=16)

ZOO: Dict[str, ZooCase] = {
    # ResNet family: the input of layer4 is the official A2MIM ResNet point (mask_layer=3).
    'ResNet': ZooCase(dict(type='ResNet', depth=18, base_channels=8), 'layer4', 'input', 16,
                      (64, 32)),
    'ResNetV1c': ZooCase(dict(type='ResNetV1c', depth=18, base_channels=8), 'layer3', 'input',
                         8, (64, 32)),
    'ResNetV1d': ZooCase(dict(type='ResNetV1d', depth=18, base_channels=8), 'layer2', 'input',
                         4, (64, 32)),
    'ResNeXt': ZooCase(dict(type='ResNeXt', **RESNEXT), 'layer3', 'input', 8, (512, 32)),
    'SEResNet': ZooCase(dict(type='SEResNet', depth=50, base_channels=16), 'layer4', 'input',
                        16, (512, 32)),
    'SEResNeXt': ZooCase(dict(type='SEResNeXt', **RESNEXT), 'layer4', 'input', 16, (512, 32)),
    'Res2Net': ZooCase(dict(type='Res2Net', depth=50, base_channels=16), 'layer4', 'input', 16,
                       (512, 32)),
    'ResNeSt': ZooCase(dict(type='ResNeSt', depth=50, stem_channels=16, base_channels=16),
                       'layer4', 'input', 16, (512, 32)),
    'RegNet': ZooCase(dict(type='RegNet', arch='regnetx_400mf'), 'layer3', 'input', 8,
                      (384, 32)),
    'ResNet_CIFAR': ZooCase(dict(type='ResNet_CIFAR', depth=18, base_channels=8), 'layer3',
                            'input', 2, (64, 8), size=32),
    'CSPDarkNet': ZooCase(dict(type='CSPDarkNet', depth=53), 'stages.3', 'input', 8,
                          (1024, 32)),
    'CSPResNet': ZooCase(dict(type='CSPResNet', depth=50), 'stages.2', 'input', 8, (1024, 32)),
    'DenseNet': ZooCase(dict(type='DenseNet', arch=dict(growth_rate=8, depths=[2, 2, 2, 2],
                                                          init_channels=16)),
                        'stages.2', 'input', 16, (32, 32)),
    # HRNet's stages take lists of branches: the token goes in before the branches split.
    'HRNet': ZooCase(dict(type='HRNet', arch='w18'), 'layer1', 'input', 4, (144, 32)),
    'VGG': ZooCase(dict(type='VGG', depth=11), 'features.6', 'input', 4, (512, 32)),
    # ConvNeXt V1 / V2 and other modern CNNs: stage inputs (NCHW).
    'ConvNeXt': ZooCase(dict(type='ConvNeXt', arch='atto', gap_before_final_norm=False),
                        'stages.2', 'input', 16, (320, 32)),
    'ConvNeXtV2': ZooCase(dict(type='ConvNeXt', arch='atto', use_grn=True,
                               layer_scale_init_value=0., gap_before_final_norm=False),
                          'stages.1', 'input', 8, (320, 32)),
    'HorNet': ZooCase(dict(type='HorNet', arch='tiny', gap_before_final_norm=False),
                      'stages.2', 'input', 16, (512, 32)),
    'EdgeNeXt': ZooCase(dict(type='EdgeNeXt', arch='xxsmall', gap_before_final_norm=False),
                        'stages.2', 'input', 16, (168, 32)),
    'RepLKNet': ZooCase(dict(type='RepLKNet', arch=dict(
        large_kernel_sizes=[7, 7, 5, 3], layers=[1, 1, 1, 1], channels=[16, 32, 64, 128],
        small_kernel=3, dw_ratio=1)), 'stages.2', 'input', 16, (128, 32)),
    'VAN': ZooCase(dict(type='VAN', arch='tiny'), 'patch_embed3', 'input', 8, (256, 32)),
    'PoolFormer': ZooCase(dict(type='PoolFormer', arch=METAFORMER), 'network.2', 'input', 8,
                          (128, 32)),
    'RIFormer': ZooCase(dict(type='RIFormer', arch=METAFORMER), 'network.2', 'input', 8,
                        (128, 32)),
    # Mobile CNNs.
    'EfficientNet': ZooCase(dict(type='EfficientNet', arch='b0'), 'layers.4', 'input', 8,
                            (1280, 32)),
    'EfficientNetV2': ZooCase(dict(type='EfficientNetV2', arch='b0'), 'layers.4', 'input', 8,
                              (1280, 32)),
    'MobileNetV2': ZooCase(dict(type='MobileNetV2', widen_factor=0.25), 'layer4', 'input', 8,
                           (1280, 32)),
    'MobileNetV3': ZooCase(dict(type='MobileNetV3', arch='small'), 'layer4', 'input', 8,
                           (576, 32)),
    'ShuffleNetV1': ZooCase(dict(type='ShuffleNetV1', groups=3, widen_factor=0.5), 'layers.1',
                            'input', 8, (480, 32)),
    'ShuffleNetV2': ZooCase(dict(type='ShuffleNetV2', widen_factor=0.5), 'layers.1', 'input',
                            8, (1024, 32)),
    'RepVGG': ZooCase(dict(type='RepVGG', arch='A0'), 'stage_3', 'input', 8, (1280, 32)),
    'MobileOne': ZooCase(dict(type='MobileOne', arch='s0'), 'stage2', 'input', 4, (1024, 32)),
    'MobileViT': ZooCase(dict(type='MobileViT', arch='xx_small'), 'layers.2', 'input', 4,
                         (320, 32)),
    # Plain ViTs: after the patch embedding (SimMIM / BEiT style) or a block input, whose
    # leading class / distillation tokens are skipped.
    'VisionTransformer': ZooCase(dict(type='VisionTransformer', arch=VIT, img_size=64,
                                      out_type='featmap'), 'patch_embed', 'output', 16,
                                 (64, 16)),
    'DistilledVisionTransformer': ZooCase(dict(type='DistilledVisionTransformer', arch=VIT,
                                               img_size=64, out_type='featmap'),
                                          'layers.0', 'input', 16, (64, 16)),
    'DeiT3': ZooCase(dict(type='DeiT3', arch=VIT, img_size=64, out_type='featmap'), 'layers.1',
                     'input', 16, (64, 16)),
    'BEiTViT': ZooCase(dict(type='BEiTViT', arch=VIT, img_size=64, out_type='featmap'),
                       'patch_embed', 'output', 16, (64, 16)),
    'ViTEVA02': ZooCase(dict(type='ViTEVA02', arch=VIT, img_size=64, out_type='featmap'),
                        'layers.0', 'input', 16, (64, 16)),
    'T2T_ViT': ZooCase(dict(type='T2T_ViT', img_size=64, embed_dims=64, num_layers=2,
                            out_type='featmap', layer_cfgs=dict(num_heads=2)),
                       'encoder.0', 'input', 16, (64, 16)),
    'ViTSAM': ZooCase(dict(type='ViTSAM', arch=dict(VIT, global_attn_indexes=[1]), img_size=64,
                           window_size=2, out_channels=32), 'layers.0', 'input', 16, (32, 16)),
    'XCiT': ZooCase(dict(type='XCiT', embed_dims=64, depth=2, num_heads=2, cls_attn_layers=1,
                         img_size=64, out_type='featmap'), 'xca_layers.0', 'input', 16,
                    (64, 16)),
    # Reversible blocks recompute themselves in backward: the token goes in before them. The
    # output concatenates the two streams (2 x 64 channels).
    'RevVisionTransformer': ZooCase(dict(type='RevVisionTransformer', arch=VIT, img_size=64,
                                         out_type='featmap'), 'patch_embed', 'output', 16,
                                    (128, 16)),
    # MlpMixer ends in a (B, C, L) token output, folded into the decoder's map.
    'MlpMixer': ZooCase(dict(type='MlpMixer', arch=dict(embed_dims=64, num_layers=2,
                                                        tokens_mlp_dims=32,
                                                        channels_mlp_dims=128), img_size=64),
                        'patch_embed', 'output', 16, (64, 16)),
    # Hierarchical transformers: the patch embedding, or a stage / block input with hw_shape.
    'SwinTransformer': ZooCase(dict(type='SwinTransformer', arch=STAGES4, img_size=64,
                                    window_size=2), 'patch_embed', 'output', 4, (128, 32)),
    'SwinTransformerV2': ZooCase(dict(type='SwinTransformerV2', arch=dict(
        STAGES4, extra_norm_every_n_blocks=0), img_size=64, window_size=2), 'stages.2', 'input',
        8, (128, 32)),
    'DaViT': ZooCase(dict(type='DaViT', arch=STAGES4, window_size=2), 'stages.1', 'input', 8,
                     (128, 32)),
    'MViT': ZooCase(dict(type='MViT', arch=dict(embed_dims=16, num_layers=3, num_heads=1,
                                                downscale_indices=[1, 2]), img_size=64),
                    'blocks.0', 'input', 4, (64, 16)),
    'PCPVT': ZooCase(dict(type='PCPVT', arch=TWINS), 'stages.1.0', 'input', 8, (128, 32)),
    'SVT': ZooCase(dict(type='SVT', arch=dict(TWINS, window_sizes=[2, 2, 2, 2])), 'stages.1.0',
                   'input', 8, (128, 32)),
    'LeViT': ZooCase(dict(type='LeViT', arch='128s', img_size=64), 'stages.0', 'input', 16,
                     (384, 64)),
    'TinyViT': ZooCase(dict(type='TinyViT', arch=dict(channels=[16, 32, 64, 128],
                                                      num_heads=[1, 1, 2, 4],
                                                      depths=[1, 1, 1, 1]),
                            img_size=(64, 64), window_size=[2, 2, 2, 2],
                            gap_before_final_norm=False), 'stages.1', 'input', 8, (128, 32)),
}

# name: (stock backbone, mask_token spec, a regex of the error that names the fix)
REFUSALS: Dict[str, tuple] = {
    # Inputs that are lists or carry another stream.
    'HRNet-branches': (dict(type='HRNet', arch='w18'), dict(at='stage2'),
                       r"input is a tuple of \['list'\].*several streams"),
    'TNT-pixel-stream': (dict(type='TNT', arch=dict(embed_dims_outer=64, embed_dims_inner=8,
                                                    num_layers=2, num_heads_inner=2,
                                                    num_heads_outer=2), img_size=64),
                         dict(at='layers.0', input_size=64),
                         r'does not have the image batch \(2\)'),
    'HiViT-5d-blocks': (dict(type='HiViT', arch=dict(embed_dims=64, depths=[1, 1, 2],
                                                     num_heads=2), img_size=64),
                        dict(at='blocks.0'), r'feature has shape \(2, 16, 4, 4, 16\)'),
    # Modules that run more than once per step.
    'DenseNet-shared-act': (dict(type='DenseNet', arch=dict(growth_rate=8, depths=[2, 2, 2, 2],
                                                              init_channels=16)),
                            dict(at='act', on='output'), r'ran 2 times.*shared'),
    'ConvMixer-shared-act': (dict(type='ConvMixer', arch=dict(embed_dims=32, depth=2,
                                                              patch_size=8, kernel_size=3)),
                             dict(at='act', on='output'), r'ran 5 times.*shared'),
    'ResNet-inside-with_cp': (dict(type='ResNet', depth=18, base_channels=8, with_cp=True),
                              dict(at='layer2.0.conv1'), r'ran 2 times.*with_cp=False'),
    # Grids that do not divide the image.
    'AlexNet-stride': (dict(type='AlexNet'), dict(at='features.3', input_size=224),
                       r'\(2, 64, 27, 27\) divide the 224 px input'),
    # Points the gradient does not reach.
    'ViT-after-final-norm': (dict(type='VisionTransformer', arch=VIT, img_size=64,
                                  out_type='cls_token'), dict(at='ln1', on='output'),
                             r'does not reach the backbone.s output'),
    'RevViT-reversible': (dict(type='RevVisionTransformer', arch=VIT, img_size=64),
                          dict(at='layers.0'), r'recomputes the layers.*reversible'),
    # An output without a spatial map for the decoder.
    'MixMIM-pooled-output': (dict(type='MixMIMTransformer', arch=STAGES4, img_size=64,
                                  window_size=[2, 2, 2, 2]), dict(at='layers.0'),
                             r'not a feature map.*returns shape \(.B., 128\)'),
    # A path that does not exist.
    'ResNet-bad-path': (dict(type='ResNet', depth=18, base_channels=8), dict(at='layer9'),
                        r"has no module 'layer9'.*'layer1', 'layer2'"),
}
