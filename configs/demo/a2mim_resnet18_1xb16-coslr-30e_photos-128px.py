# A2MIM pre-training of a ResNet-18 on the bundled photo folder, sized for a laptop CPU
# (about 4 minutes on 2 CPU cores). Settings follow the official ResNet-50 row (mask layer 3 with
# gamma, focal L1 + focal frequency loss 0.5, RGB-mean fill) at 128 px.
#   make demo   (or: mim train mmpretrain configs/demo/a2mim_resnet18_1xb16-coslr-30e_photos-128px.py
#                after writing data/a2mim_demo and data/a2mim_demo_cls, see the Makefile)
_base_ = 'mmpretrain::_base_/default_runtime.py'
custom_imports = dict(imports=['a2mim_plugin'], allow_failed_imports=False)

img_size = 128
model = dict(
    type='A2MIM',
    data_preprocessor=dict(
        type='SelfSupDataPreprocessor',
        mean=[123.675, 116.28, 103.53],
        std=[58.395, 57.12, 57.375],
        to_rgb=True),
    backbone=dict(
        type='A2MIMResNet', depth=18, mask_layer=3, mask_init=1e-6, out_indices=(3, )),
    neck=dict(type='A2MIMLinearDecoder', in_channels=512, encoder_stride=32),
    head=dict(
        type='A2MIMHead',
        loss=dict(type='FocalL1Loss', alpha=0.2, gamma=1.0),
        fft_weight=0.5,
        fft_focal=True,
        fft_unmask_replace='mixed',
        fft_unmask_weight=1e-3))

train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(
        type='RandomResizedCrop',
        scale=img_size,
        crop_ratio_range=(0.5, 1.0),
        backend='pillow',
        interpolation='bilinear'),
    dict(type='RandomFlip', prob=0.5),
    dict(
        type='SimMIMMaskGenerator',
        input_size=img_size,
        mask_patch_size=32,
        model_patch_size=16,
        mask_ratio=0.6),
    dict(type='PackInputs'),
]
train_dataloader = dict(
    batch_size=16,
    num_workers=2,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=True),
    collate_fn=dict(type='default_collate'),
    dataset=dict(
        type='CustomDataset',
        data_root='data/a2mim_demo',
        data_prefix='train',
        with_label=False,
        pipeline=train_pipeline))

optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=2e-3, betas=(0.9, 0.999), weight_decay=0.05),
    paramwise_cfg=dict(
        custom_keys={
            'bn': dict(decay_mult=0.),
            'bias': dict(decay_mult=0.),
            'mask_token': dict(decay_mult=0., lr_mult=0.1),
        }))
max_epochs = 30
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-3, by_epoch=True, begin=0, end=1,
         convert_to_iter_based=True),
    dict(type='CosineAnnealingLR', T_max=max_epochs - 1, eta_min=1e-5, by_epoch=True, begin=1,
         end=max_epochs, convert_to_iter_based=True),
]
train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=max_epochs)

default_hooks = dict(
    logger=dict(type='LoggerHook', interval=10),
    checkpoint=dict(type='AtomicCheckpointHook', interval=10, max_keep_ckpts=2),
    # k-NN top-1 of the plain backbone (docs/evaluation.md) before training and every 10 epochs:
    # "which photo is this crop from", 24 labelled crops per photo vote for 8 held-out crops
    # per photo (make_demo_classification('data/a2mim_demo_cls'), 96 px; 14 classes, chance
    # 7.1 %). Toy scale: 336 + 112 images, and the crops overlap the pre-training crops' photos.
    knn_eval=dict(
        type='KNNEvalHook',
        bank=dict(type='CustomDataset', data_root='data/a2mim_demo_cls', data_prefix='train'),
        query=dict(type='CustomDataset', data_root='data/a2mim_demo_cls', data_prefix='val'),
        interval=10,
        before_train=True,
        ks=(20, ),
        crop_size=96,
        batch_size=32,
        num_workers=2))
custom_hooks = [
    dict(type='ReconstructionVisHook', interval=210, num_images=6),
    dict(type='RNGStateHook'),
    dict(type='NonFiniteLossHook'),
    dict(type='MaskPipelineCheckHook'),
    dict(type='CompileReadyHook'),
]
randomness = dict(seed=0)
work_dir = 'work_dirs/a2mim_demo'
