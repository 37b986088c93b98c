# Linear probe of the A2MIM Swin-B (window 6, 100-epoch pre-training at 192 px) on ImageNet-1K at
# 192 px. Neither MMPretrain nor A2MIM publishes a Swin linear probe; this follows MoCo v3's
# ResNet-50 linear protocol (configs/_base_/linear_probe/resnet_mocov3-linear.py: SGD lr 0.4, no
# weight decay, cosine over 90 epochs, 8 x 128 images per step) on the stock Swin's globally
# averaged last stage (after its final norm) with a linear head. Frozen: patch embedding, all 4
# stages and the output norm (frozen_stages=3, the last stage index).
_base_ = '../../_base_/linear_probe/resnet_mocov3-linear.py'

# The pre-training run's last checkpoint (or its backbone export); override with
#   --cfg-options model.backbone.init_cfg.checkpoint=PATH
pretrained = 'work_dirs/a2mim_swin-base-w6_8xb128-accu2-coslr-100e_in1k-192px/epoch_100.pth'

model = dict(
    backbone=dict(
        _delete_=True,
        type='SwinTransformer',
        arch='base',
        img_size=192,
        drop_path_rate=0.,
        out_indices=(3, ),
        stage_cfgs=dict(block_cfgs=dict(window_size=6)),
        frozen_stages=3,
        init_cfg=dict(type='Pretrained', checkpoint=pretrained, prefix='backbone.',
                      strict=True)),
    neck=dict(type='GlobalAveragePooling'),
    head=dict(in_channels=1024))

# 192 px, as the pre-training: RandomResizedCrop 192 + flip; test short side 219 + centre 192.
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='RandomResizedCrop', scale=192, backend='pillow'),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='PackInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='ResizeEdge', scale=219, edge='short', backend='pillow'),
    dict(type='CenterCrop', crop_size=192),
    dict(type='PackInputs'),
]
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))
val_dataloader = dict(dataset=dict(pipeline=test_pipeline))
test_dataloader = val_dataloader
