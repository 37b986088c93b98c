# ImageNet-1K pre-training data for the ViT rows (A2MIM and the SimMIM baseline).
#
# Official: torchvision RandomResizedCrop(224, scale=(0.67, 1)) + flip + Normalize, then a
# 32-px blockwise mask with ratio 0.6 (30 of 7x7 blocks) expressed on the 16-px patch grid
# (14x14). The A2MIM RGB-mean fill is done in the model, after the data preprocessor.
#
# This file is self-contained on purpose: inheriting MMPretrain's own dataset bases through
# `mmpretrain::` injects `_scope_` into `collate_fn=dict(type='default_collate')`, and
# mmengine then calls default_collate(_scope_=...) and fails.
dataset_type = 'ImageNet'
data_root = 'data/imagenet/'

train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(
        type='RandomResizedCrop',
        scale=224,
        crop_ratio_range=(0.67, 1.0),
        backend='pillow',
        interpolation='bilinear'),
    dict(type='RandomFlip', prob=0.5),
    dict(
        type='SimMIMMaskGenerator',
        input_size=224,
        mask_patch_size=32,
        model_patch_size=16,
        mask_ratio=0.6),
    dict(type='PackInputs'),
]

train_dataloader = dict(
    batch_size=256,
    num_workers=8,
    persistent_workers=True,
    pin_memory=True,
    sampler=dict(type='DefaultSampler', shuffle=True),
    collate_fn=dict(type='default_collate'),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        split='train',
        pipeline=train_pipeline))
