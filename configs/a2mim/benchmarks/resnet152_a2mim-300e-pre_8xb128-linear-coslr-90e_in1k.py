# Linear probe of the A2MIM ResNet-152 (300-epoch pre-training) on ImageNet-1K: MoCo v3's
# ResNet-50 linear protocol (configs/_base_/linear_probe/resnet_mocov3-linear.py; MMPretrain
# has no linear-probe config for this depth):
# stages and BatchNorm statistics frozen, global average pooling + linear head, SGD lr 0.4,
# 90 epochs, 8 x 128 images per step.
_base_ = '../../_base_/linear_probe/resnet_mocov3-linear.py'

# The pre-training run's last checkpoint (or its backbone export); override with
#   --cfg-options model.backbone.init_cfg.checkpoint=PATH
pretrained = 'work_dirs/a2mim_resnet152_8xb256-coslr-300e_in1k/epoch_300.pth'

model = dict(backbone=dict(depth=152, init_cfg=dict(checkpoint=pretrained)))
