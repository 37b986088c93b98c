# Mask R-CNN R-50-FPN, 2x: 24 epochs, LR steps at 16 and 23, 1000 warmup iterations (the
# official 2x overrides), otherwise as the 1x config.
_base_ = './mask-rcnn_r50_fpn_a2mim_ms-1x_coco.py'

train_cfg = dict(max_epochs=24)
param_scheduler = [
    dict(type='LinearLR', start_factor=0.001, by_epoch=False, begin=0, end=1000),
    dict(type='MultiStepLR', begin=0, end=24, by_epoch=True, milestones=[16, 23], gamma=0.1),
]
