# Linear probe of the A2MIM ResNet-50 (300-epoch pre-training) on ImageNet-1K: MMPretrain's
# MoCo v3 ResNet-50 linear protocol (configs/_base_/linear_probe/resnet_mocov3-linear.py):
# stages and BatchNorm statistics frozen, global average pooling + linear head, SGD lr 0.4,
# 90 epochs, 8 x 128 images per step.
_base_ = '../../_base_/linear_probe/resnet_mocov3-linear.py'

# The pre-training run's last checkpoint (or its backbone export); override with
#   --cfg-options model.backbone.init_cfg.checkpoint=PATH
pretrained = 'work_dirs/a2mim_resnet50_8xb256-coslr-300e_in1k/epoch_300.pth'

model = dict(backbone=dict(depth=50, init_cfg=dict(checkpoint=pretrained)))
