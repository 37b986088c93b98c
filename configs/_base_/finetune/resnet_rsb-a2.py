# ImageNet-1K fine-tuning of the A2MIM / SimMIM ResNets with "ResNet strikes back" A2, as the
# official `r*_rsb_a2_ft_sz224_8xb256_cos_fp16_ep300.py` (defaults here: ResNet-50).
#
# MMPretrain's own RSB-A2 recipe (stock ResNet with SyncBN, BCE loss, Mixup 0.1 / CutMix 1.0,
# RandAugment m7 std 0.5, RepeatAugSampler, LAMB 5e-3 wd 0.02 without decay on norms and
# biases, 8 x 256 = 2048, test Resize 236 + CenterCrop 224) plus the official differences:
# fp16, 5 warm-up epochs from 1e-5 of the LR, a per-iteration cosine to 1e-6.
_base_ = 'mmpretrain::resnet/resnet50_8xb256-rsb-a2-300e_in1k.py'

model = dict(
    backbone=dict(
        depth=50,
        drop_path_rate=0.05,
        init_cfg=dict(type='Pretrained', checkpoint='', prefix='backbone.', strict=True)))

optim_wrapper = dict(type='AmpOptimWrapper', loss_scale='dynamic')

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
        begin=5,
        end=300,
        convert_to_iter_based=True),
]

train_cfg = dict(by_epoch=True, max_epochs=300, val_interval=1)

default_hooks = dict(
    checkpoint=dict(type='AtomicCheckpointHook', interval=1, max_keep_ckpts=2))
