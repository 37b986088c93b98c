# A2MIM ResNet-50 (official `r50.py` + the `*_init_*` 300-epoch row): mmcls-style ResNet with
# SyncBN and zero-init residuals, no drop path. The mask token is added before layer4
# (mask_layer 3: 1024 channels, 14x14 at 224 px) after the masked features are scaled by a
# learnable per-channel gamma initialised at 1e-6. Spatial loss: focal L1 (alpha 0.2,
# gamma 1); Fourier loss: focal frequency loss with weight 0.5.
model = dict(
    type='A2MIM',
    input_fill='mean',
    data_preprocessor=dict(
        type='SelfSupDataPreprocessor',
        mean=[123.675, 116.28, 103.53],
        std=[58.395, 57.12, 57.375],
        to_rgb=True),
    backbone=dict(
        type='A2MIMResNet',
        depth=50,
        num_stages=4,
        out_indices=(3, ),
        style='pytorch',
        norm_cfg=dict(type='SyncBN', requires_grad=True),
        zero_init_residual=True,
        drop_path_rate=0.,
        mask_layer=3,
        mask_token='learnable',
        replace=False,
        mask_init=1e-6,
        # 'trunc_normal' is the official init since 2023-03; the paper-era runs had a
        # zero-initialised token ('zeros').
        token_init='trunc_normal'),
    neck=dict(
        type='A2MIMLinearDecoder', in_channels=2048, encoder_stride=32,
        kernel_size=1),
    head=dict(
        type='A2MIMHead',
        loss=dict(type='FocalL1Loss', alpha=0.2, gamma=1.0),
        fft_weight=0.5,
        fft_focal=True,
        fft_unmask_replace='mixed',
        fft_unmask_weight=1e-3))
