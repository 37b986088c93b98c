# A2MIM ConvNeXt-S (official `convnext_s.py`): no drop path, layer scale 1e-6, final norm on the
# 7x7 map. The mask token is added after the third downsampling (mask_layer 3: stride 32, 7x7
# at 224 px) after gamma (1e-6) scaling. Spatial loss focal L1; the official row switches the
# Fourier loss off (head override fft_weight=0, fft_focal=False).
model = dict(
    type='A2MIM',
    input_fill='mean',
    data_preprocessor=dict(
        type='SelfSupDataPreprocessor',
        mean=[123.675, 116.28, 103.53],
        std=[58.395, 57.12, 57.375],
        to_rgb=True),
    backbone=dict(
        type='A2MIMConvNeXt',
        arch='small',
        drop_path_rate=0.,
        layer_scale_init_value=1e-6,
        gap_before_final_norm=False,
        out_indices=(3, ),
        mask_layer=3,
        mask_token='learnable',
        replace=False,
        mask_init=1e-6,
        # The official trunc_normal_init call on an nn.Parameter is a no-op, so the token
        # starts at zero.
        token_init='zeros'),
    neck=dict(
        type='A2MIMLinearDecoder', in_channels=768, encoder_stride=32,
        kernel_size=1),
    head=dict(
        type='A2MIMHead',
        loss=dict(type='FocalL1Loss', alpha=0.2, gamma=1.0),
        fft_weight=0.,
        fft_focal=False))
