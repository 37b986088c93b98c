# Fine-tuning of the A2MIM ResNet-50 (300-epoch pre-training) on ImageNet-1K,
# RSB A2 (300 epochs at 224 px). Published top-1: 80.4.
# Official: openmixup configs/benchmarks/classification/imagenet/
#           r50_rsb_a2_ft_sz224_8xb256_cos_fp16_ep300.py
_base_ = '../../_base_/finetune/resnet_rsb-a2.py'
custom_imports = dict(imports=['a2mim_plugin'], allow_failed_imports=False)

# Pre-trained weights: the pre-training run's last checkpoint (or its backbone-only export from
# tools/export_backbone.py; both hold `backbone.*` keys). Override on the command line with
#   --cfg-options model.backbone.init_cfg.checkpoint=PATH
pretrained = 'work_dirs/a2mim_resnet50_8xb256-coslr-300e_in1k/epoch_300.pth'

model = dict(
    backbone=dict(
        depth=50, drop_path_rate=0.05, init_cfg=dict(checkpoint=pretrained)))

# Official EMA (R-50 A2 config only): momentum 0.9999 (mmengine: 1 - 0.9999), updated every
# optimizer step, the keep coefficient warmed up linearly from 0.9 x 0.9999 over the first 20
# epochs (warmup_iters=20 x 626 dataloader iterations).
custom_hooks = [
    dict(
        type='OptimStepEMAHook',
        momentum=1e-4,
        warmup_epochs=20,
        warmup_ratio=0.9,
        priority='ABOVE_NORMAL')
]
