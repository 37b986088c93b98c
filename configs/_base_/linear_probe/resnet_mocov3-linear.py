# Linear probing of the A2MIM / SimMIM ResNets on ImageNet-1K: MMPretrain's own MoCo v3 ResNet-50
# protocol (`mocov3/benchmarks/resnet50_8xb128-linear-coslr-90e_in1k.py`, Chen et al., ICCV
# 2021): stock ResNet with all 4 stages and the stem frozen and BatchNorm in eval mode
# (frozen_stages=4, norm_eval=True: weights and running statistics stay as pre-trained),
# global average pooling and a linear head; SGD lr 0.4 momentum 0.9 without weight decay, cosine
# over 90 epochs, 8 GPUs x 128 = 1024 images per step. (Defaults here: ResNet-50; MMPretrain has
# no linear-probe config for the deeper ResNets, which follow the same protocol.)
_base_ = 'mmpretrain::mocov3/benchmarks/resnet50_8xb128-linear-coslr-90e_in1k.py'
custom_imports = dict(imports=['a2mim_plugin'], allow_failed_imports=False)

model = dict(
    backbone=dict(
        depth=50,
        # Strict: every backbone tensor from the checkpoint (mask_token / mask_gamma unused).
        init_cfg=dict(type='Pretrained', checkpoint='', prefix='backbone.', strict=True)))

# Checkpoints written atomically (an interrupted write never replaces the last good one).
default_hooks = dict(checkpoint=dict(type='AtomicCheckpointHook', interval=10, max_keep_ckpts=3))
