# ImageNet-1K pre-training data for the CNN SimMIM baselines (mask layer 0, stride 4,
# 56x56 mask grid).
#
# Used by the SimMIM baselines only. Their official dataset base (`simmim_sz224_bs64.py`) crops
# with RandomResizedCrop(224, scale=(0.67, 1)), not the A2MIM CNN rows' "rrc08" (0.8, 1); the
# 32-px blockwise mask (ratio 0.6) is expressed on the grid of the mask-token injection point,
# so model_patch_size must equal the backbone stride there (4 px).
# Self-contained on purpose: see imagenet_a2mim_vit-p16.py for the collate_fn/_scope_ pitfall.
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
        model_patch_size=4,
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
