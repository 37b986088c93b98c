# Fine-tuning of the A2MIM ConvNeXt-T (300-epoch pre-training) on ImageNet-1K, 400 epochs.
# Official: openmixup configs/benchmarks/classification/imagenet/
#           convnext_t_spark_ft_sz224_8xb256_cos_fp16_ep400.py
# The ConvNeXt-S/B recipe (configs/_base_/finetune/convnext_spark-protocol.py: data, mixup,
# EMA 0.9999 per optimizer step with its 20-epoch warm-up, fp16, 8 x 256 x 2 = 4096) with the
# official ConvNeXt-T values: AdamW 4e-4, wd 0.01, layer-wise LR decay 0.7 (MMPretrain's
# ConvNeXt.get_layer_depth, which groups the blocks as the official `model_type='convnext'`
# constructor), drop path 0.1, 400 epochs (5 warm-up epochs, cosine to 1e-6 over all 400).
_base_ = '../../_base_/finetune/convnext_spark-protocol.py'
custom_imports = dict(imports=['a2mim_plugin'], allow_failed_imports=False)

# Pre-trained weights: the pre-training run's last checkpoint (or its backbone-only export from
# tools/export_backbone.py; both hold `backbone.*` keys). Override on the command line with
#   --cfg-options model.backbone.init_cfg.checkpoint=PATH
pretrained = 'work_dirs/a2mim_convnext-tiny_8xb256-amp-coslr-300e_in1k/epoch_300.pth'

model = dict(
    backbone=dict(arch='tiny', drop_path_rate=0.1, init_cfg=dict(checkpoint=pretrained)),
    head=dict(in_channels=768))

optim_wrapper = dict(
    optimizer=dict(lr=4e-4, weight_decay=0.01),
    constructor='LearningRateDecayOptimWrapperConstructor',
    paramwise_cfg=dict(layer_decay_rate=0.7))

param_scheduler = [
    dict(
        type='LinearLR',
        start_factor=1e-5,
        by_epoch=True,
        begin=0,
        end=5,
        convert_to_iter_based=True),
    dict(
        type='CosineAnnealingLR',
        eta_min=1e-6,
        by_epoch=True,
        begin=0,
        end=400,
        convert_to_iter_based=True),
]

train_cfg = dict(max_epochs=400)
