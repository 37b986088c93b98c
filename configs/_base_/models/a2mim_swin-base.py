# A2MIM Swin-B (official openmixup `_base_/models/a2mim/swin_base.py`): MMPretrain's stock
# SwinTransformer at 192 px with window 6 and no drop path; the mask token is ADDED to the patch
# embeddings (the output of `patch_embed`, stride 4, before the absolute position embedding:
# the official mask_layer 0, replace=False) through the generic injection `model.mask_token`.
# Masked pixels are filled with each image's RGB mean. Decoder: linear (1x1 conv +
# PixelShuffle) from the 6x6 stride-32 map. Head: L1 on masked pixels + the focal Fourier loss
# with weight 0.5, fft_unmask_replace 'mixed', fft_unmask_weight 0.
model = dict(
    type='A2MIM',
    input_fill='mean',
    data_preprocessor=dict(
        type='SelfSupDataPreprocessor',
        mean=[123.675, 116.28, 103.53],
        std=[58.395, 57.12, 57.375],
        to_rgb=True),
    backbone=dict(
        type='SwinTransformer',
        arch='base',
        img_size=192,
        drop_rate=0.,
        drop_path_rate=0.,
        out_indices=(3, ),
        stage_cfgs=dict(block_cfgs=dict(window_size=6))),
    mask_token=dict(
        at='patch_embed',
        on='output',
        kind='learnable',
        replace=False,
        mask_init=0.,
        token_init='trunc_normal'),
    neck=dict(
        type='A2MIMLinearDecoder', in_channels=1024, encoder_stride=32,
        kernel_size=1),
    head=dict(
        type='A2MIMHead',
        loss=dict(type='ElementwiseL1Loss'),
        unmask_weight=0.,
        fft_weight=0.5,
        fft_focal=True,
        fft_unmask_weight=0.,
        fft_unmask_replace='mixed'))
