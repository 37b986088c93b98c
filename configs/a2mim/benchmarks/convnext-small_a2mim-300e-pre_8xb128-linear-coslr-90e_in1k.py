# Linear probe of the A2MIM ConvNeXt-S (300-epoch pre-training) on ImageNet-1K. Neither
# MMPretrain nor A2MIM publishes a ConvNeXt linear probe; this follows MoCo v3's ResNet-50 linear
# protocol (configs/_base_/linear_probe/resnet_mocov3-linear.py: SGD lr 0.4, no weight decay,
# cosine over 90 epochs, 8 x 128 images per step) on the stock ConvNeXt's pooled, normed feature
# (global average, then the final LayerNorm, as in fine-tuning) with a linear head.
# Frozen: the 4 stages and downsampling layers (frozen_stages=4) and the final norm (norm3,
# which frozen_stages leaves trainable: learning rate 0 here).
_base_ = '../../_base_/linear_probe/resnet_mocov3-linear.py'

# The pre-training run's last checkpoint (or its backbone export); override with
#   --cfg-options model.backbone.init_cfg.checkpoint=PATH
pretrained = 'work_dirs/a2mim_convnext-small_8xb256-amp-coslr-300e_in1k/epoch_300.pth'

model = dict(
    backbone=dict(
        _delete_=True,
        type='ConvNeXt',
        arch='small',
        drop_path_rate=0.,
        gap_before_final_norm=True,
        frozen_stages=4,
        init_cfg=dict(type='Pretrained', checkpoint=pretrained, prefix='backbone.',
                      strict=True)),
    neck=None,
    head=dict(in_channels=768))
optim_wrapper = dict(paramwise_cfg=dict(custom_keys={'backbone.norm3': dict(lr_mult=0.)}))
