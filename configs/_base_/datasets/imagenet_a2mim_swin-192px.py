# ImageNet-1K pre-training data of the Swin rows (A2MIM and SimMIM), 192 px.
#
# As the official SimMIM Swin data (openmixup `simmim_sz192_bs64.py`, MMPretrain's
# `imagenet_bs256_simmim_192.py`): RandomResizedCrop(192, scale (0.67, 1)) + flip, then a 32-px
# blockwise mask with ratio 0.6 (22 of 6x6 blocks) on the 4-px patch grid of Swin's patch
# embedding (48x48). The A2MIM RGB-mean fill is done in the model.
# Self-contained for the same reason as the other dataset bases here (`mmpretrain::` bases put
# `_scope_` into `collate_fn`).
dataset_type = 'ImageNet'
data_root = 'data/imagenet/'

train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(
        type='RandomResizedCrop',
        scale=192,
        crop_ratio_range=(0.67, 1.0),
        backend='pillow',
        interpolation='bilinear'),
    dict(type='RandomFlip', prob=0.5),
    dict(
        type='SimMIMMaskGenerator',
        input_size=192,
        mask_patch_size=32,
        model_patch_size=4,
        mask_ratio=0.6),
    dict(type='PackInputs'),
]

train_dataloader = dict(
    batch_size=128,
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
