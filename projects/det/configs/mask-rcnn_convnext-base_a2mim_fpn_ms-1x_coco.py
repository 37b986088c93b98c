# Mask R-CNN with an A2MIM ConvNeXt-B and FPN, 1x: as the ConvNeXt-S config with the base arch.
_base_ = './mask-rcnn_convnext-small_a2mim_fpn_ms-1x_coco.py'

model = dict(
    backbone=dict(arch='base', drop_path_rate=0.3),
    neck=dict(in_channels=[128, 256, 512, 1024]))
