# ImageNet-1K fine-tuning of the A2MIM / SimMIM ConvNeXts as the official
# `convnext_{s,b}_spark_ft_sz224_8xb256_cos_fp16_ep300.py` (defaults here: ConvNeXt-S). The
# README calls it "RSB A2", but the configs are the SparK/ConvNeXt AdamW recipe:
#
# MMPretrain's stock ConvNeXt recipe (gap + the pre-trained final norm, LabelSmooth 0.1,
# Mixup 0.8 / CutMix 1.0, RandAugment m9 + RandomErasing 0.25, AdamW wd 0.05 without decay on
# norms/biases/1-d params, EMA 0.9999, test Resize 256 + CenterCrop 224) with the official
# numbers: AdamW 4e-3 for 8 x 256 x 2 accumulation = 4096, drop path 0.4 (S) / 0.5 (B),
# 5 warm-up epochs, a per-iteration cosine to 1e-6, fp16, 300 epochs, no layer decay.
_base_ = 'mmpretrain::convnext/convnext-small_32xb128_in1k.py'

model = dict(
    backbone=dict(
        arch='small',
        drop_path_rate=0.4,
        init_cfg=dict(type='Pretrained', checkpoint='', prefix='backbone.', strict=True)),
    head=dict(in_channels=768))

train_dataloader = dict(batch_size=256)
val_dataloader = dict(batch_size=256)
test_dataloader = val_dataloader

optim_wrapper = dict(
    type='AmpOptimWrapper',
    loss_scale='dynamic',
    accumulative_counts=2,
    optimizer=dict(lr=4e-3))

param_scheduler = [
    dict(
        type='LinearLR',
        start_factor=1e-6,
        by_epoch=True,
        begin=0,
        end=5,
        convert_to_iter_based=True),
    dict(
        type='CosineAnnealingLR',
        eta_min=1e-6,
        by_epoch=True,
        begin=5,
        end=300,
        convert_to_iter_based=True),
]

train_cfg = dict(by_epoch=True, max_epochs=300, val_interval=1)

default_hooks = dict(
    checkpoint=dict(type='AtomicCheckpointHook', interval=1, max_keep_ckpts=2))

# mmengine's --auto-scale-lr ignores accumulative_counts: 8 x 256 stands for 4096 per step.
auto_scale_lr = dict(base_batch_size=2048)
