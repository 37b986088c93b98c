# A2MIM ResNet-50 on your own unlabelled images (a folder of files, flat or nested).
# The model, optimiser and loss are those of ../a2mim/a2mim_resnet50_8xb256-coslr-300e_in1k.py;
# only the data and the length of the schedule are yours. See docs/custom_data.md.
#
#   mim train mmpretrain configs/custom_data/a2mim_resnet50_8xb256-coslr-300e_custom.py \
#       --cfg-options train_dataloader.dataset.data_root=/path/to/images
#
# Every image file below data_root (any depth; .jpg .jpeg .png .ppm .bmp .pgm .tif) is one
# sample; folder names are ignored (with_label=False).
_base_ = '../a2mim/a2mim_resnet50_8xb256-coslr-300e_in1k.py'

data_root = 'data/my_images'  # <- the one line to change (or the --cfg-options above)
max_epochs = 300  # scale with the dataset size: docs/custom_data.md#epochs-and-learning-rate
warmup_epochs = 10

train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(
        type='RandomResizedCrop',
        scale=224,
        crop_ratio_range=(0.8, 1.0),
        backend='pillow',
        interpolation='bilinear'),
    dict(type='RandomFlip', prob=0.5),
    # One mask cell per 16 px: the stride of ResNet-50 at mask_layer=3 (the token's point).
    dict(
        type='SimMIMMaskGenerator',
        input_size=224,
        mask_patch_size=32,
        model_patch_size=16,
        mask_ratio=0.6),
    dict(type='PackInputs'),
]
train_dataloader = dict(
    dataset=dict(
        _delete_=True,  # drop ImageNet's `split`, which CustomDataset does not take
        type='CustomDataset',
        data_root=data_root,
        with_label=False,
        pipeline=train_pipeline))

param_scheduler = [
    dict(
        type='LinearLR',
        start_factor=1e-6,
        by_epoch=True,
        begin=0,
        end=warmup_epochs,
        convert_to_iter_based=True),
    dict(
        type='CosineAnnealingLR',
        eta_min=1e-5,
        by_epoch=True,
        begin=warmup_epochs,
        end=max_epochs,
        convert_to_iter_based=True),
]
train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=max_epochs)

# The k-NN evaluation of the ImageNet configs needs labelled train/ and val/ splits; an
# unlabelled folder has none. With labelled data of your own, set default_hooks.knn_eval.bank
# and .query to them instead (docs/custom_data.md).
default_hooks = dict(knn_eval=dict(enabled=False))
