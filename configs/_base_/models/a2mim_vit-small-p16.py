# A2MIM ViT-S/16 (official `vit_small.py`): the 768-d, 8-layer "small" ViT (48.8M params, not
# DeiT-S), with absolute *and* per-layer relative position embeddings, q/v bias and layer
# scale 0.1 (MMPretrain's BEiTViT). The learnable mask token is *added* to the patch
# embeddings of the mean-filled masked patches (mask_layer 0, before cls and pos-embed).
model = dict(
    type='A2MIM',
    input_fill='mean',  # per-image RGB mean in the masked 32-px blocks
    data_preprocessor=dict(
        type='SelfSupDataPreprocessor',
        mean=[123.675, 116.28, 103.53],
        std=[58.395, 57.12, 57.375],
        to_rgb=True),
    backbone=dict(
        type='A2MIMViT',
        arch='small',
        img_size=224,
        patch_size=16,
        drop_path_rate=0.1,
        use_abs_pos_emb=True,
        use_rel_pos_bias=True,
        use_shared_rel_pos_bias=False,
        layer_scale_init_value=0.1,
        final_norm=True,
        out_type='featmap',
        mask_layer=0,
        mask_token='learnable',
        replace=False,  # residual (additive) mask token
        mask_init=0.,  # no mask_gamma in the ViT rows
        token_init='trunc_normal'),
    neck=dict(
        type='A2MIMLinearDecoder', in_channels=768, encoder_stride=16,
        kernel_size=1),
    head=dict(
        type='A2MIMHead',
        loss=dict(type='ElementwiseL1Loss'),
        fft_weight=0.1,
        fft_focal=True,
        fft_unmask_replace='mixed',
        fft_unmask_weight=0.))
