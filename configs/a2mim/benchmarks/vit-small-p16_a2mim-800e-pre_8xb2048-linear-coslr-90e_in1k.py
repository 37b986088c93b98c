# Linear probe of the A2MIM ViT-S/16 (the 768-d, 8-layer A2MIM "small", 800-epoch pre-training)
# on ImageNet-1K: MMPretrain's MAE linear protocol (configs/_base_/linear_probe/
# vit-p16_mae-linear.py): frozen backbone, class token, ClsBatchNormNeck + linear head, LARS,
# 90 epochs, 8 x 2048 images per step.
_base_ = '../../_base_/linear_probe/vit-p16_mae-linear.py'

# The pre-training run's last checkpoint (or its backbone export); override with
#   --cfg-options model.backbone.init_cfg.checkpoint=PATH
pretrained = 'work_dirs/a2mim_vit-small-p16_8xb256-step-800e_in1k/epoch_800.pth'

model = dict(
    backbone=dict(arch='small', frozen_stages=8, init_cfg=dict(checkpoint=pretrained)),
    neck=dict(input_features=768),
    head=dict(in_channels=768))
