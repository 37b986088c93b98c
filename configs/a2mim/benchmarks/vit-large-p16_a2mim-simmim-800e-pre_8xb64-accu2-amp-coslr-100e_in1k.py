# Fine-tuning of the SimMIM-baseline ViT-L/16 (800-epoch pre-training) on ImageNet-1K,
# BEiT/SimMIM protocol, 100 epochs. Published top-1: 85.6.
# Official: openmixup configs/benchmarks/classification/imagenet/
#           vit_large_p16_swin_ft_simmim_sz224_8xb64_accu2_cos_ep100.py
_base_ = '../../_base_/finetune/vit-p16_beit-protocol.py'
custom_imports = dict(imports=['a2mim_plugin'], allow_failed_imports=False)

# Pre-trained weights: the pre-training run's last checkpoint (or its backbone-only export from
# tools/export_backbone.py; both hold `backbone.*` keys). Override on the command line with
#   --cfg-options model.backbone.init_cfg.checkpoint=PATH
pretrained = 'work_dirs/a2mim-simmim_vit-large-p16_8xb128-accu2-amp-step-800e_in1k/epoch_800.pth'

model = dict(
    backbone=dict(arch='large', init_cfg=dict(checkpoint=pretrained)),
    head=dict(in_channels=1024))

# 8 GPUs x 64 x 2 accumulation steps = 1024, repeated-augmentation sampler.
train_dataloader = dict(
    batch_size=64, sampler=dict(type='RepeatAugSampler', shuffle=True))
optim_wrapper = dict(accumulative_counts=2)
# mmengine's --auto-scale-lr ignores accumulative_counts: 8 x 64 stands for 1024 per step.
auto_scale_lr = dict(base_batch_size=512)

# Official EMA: momentum 0.99996 (mmengine: 1 - 0.99996), one update per optimizer step
# (update_interval=2), the keep coefficient warmed up linearly from 0.9 x 0.99996 over the first
# 20 epochs (warmup_iters=20 x 2503 dataloader iterations).
custom_hooks = [
    dict(
        type='OptimStepEMAHook',
        momentum=4e-5,
        warmup_epochs=20,
        warmup_ratio=0.9,
        priority='ABOVE_NORMAL')
]

train_cfg = dict(max_epochs=100)
