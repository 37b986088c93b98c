# A2MIM ViT-B/16 on your own unlabelled images (a folder of files, flat or nested).
# The model, optimiser and loss are those of
# ../a2mim/a2mim_vit-base-p16_8xb128-accu2-step-800e_in1k.py; only the data and the length of the
# schedule are yours. See docs/custom_data.md.
#
#   mim train mmpretrain configs/custom_data/a2mim_vit-base-p16_8xb128-accu2-step-800e_custom.py \
#       --cfg-options train_dataloader.dataset.data_root=/path/to/images
#
# Every image file below data_root (any depth; .jpg .jpeg .png .ppm .bmp .pgm .tif) is one
# sample; folder names are ignored (with_label=False).
_base_ = '../a2mim/a2mim_vit-base-p16_8xb128-accu2-step-800e_in1k.py'

data_root = 'data/my_images'  # <- the one line to change (or the --cfg-options above)
max_epochs = 800  # scale with the dataset size: docs/custom_data.md#epochs-and-learning-rate
warmup_epochs = 10
lr_drop_epoch = 700  # the step schedule divides the LR by 10 here (7/8 of the run)

train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(
        type='RandomResizedCrop',
        scale=224,
        crop_ratio_range=(0.67, 1.0),
        backend='pillow',
        interpolation='bilinear'),
    dict(type='RandomFlip', prob=0.5),
    # One mask cell per 16 px patch (the ViT patch size); 32 px masked blocks.
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
        start_factor=2e-6,
        by_epoch=True,
        begin=0,
        end=warmup_epochs,
        convert_to_iter_based=True),
    dict(
        type='MultiStepLR',
        milestones=[lr_drop_epoch],
        gamma=0.1,
        by_epoch=True,
        begin=0,
        end=max_epochs),
]
train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=max_epochs)

# The k-NN evaluation of the ImageNet configs needs labelled train/ and val/ splits; an
# unlabelled folder has none. With labelled data of your own, set default_hooks.knn_eval.bank
# and .query to them instead (docs/custom_data.md).
default_hooks = dict(knn_eval=dict(enabled=False))
