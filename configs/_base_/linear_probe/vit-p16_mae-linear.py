# Linear probing of the A2MIM / SimMIM ViTs on ImageNet-1K: MMPretrain's own MAE protocol
# (`mae/benchmarks/vit-base-p16_8xb2048-linear-coslr-90e_in1k.py`, He et al., CVPR 2022,
# App. A.2): every backbone tensor frozen (frozen_stages = all layers, final norm included),
# the class token after the pre-trained final norm, ClsBatchNormNeck (BatchNorm without affine)
# and a linear head; LARS lr 6.4 (0.1 x 16384 / 256), no weight decay, 10 warm-up + 80 cosine
# epochs, 8 GPUs x 2048 = 16384 images per step, AMP.
# The backbone is the pre-training one: MMPretrain's stock BEiTViT with absolute + per-layer
# relative position embeddings and layer scale 0.1 (defaults here: ViT-B, 12 layers).
_base_ = 'mmpretrain::mae/benchmarks/vit-base-p16_8xb2048-linear-coslr-90e_in1k.py'
custom_imports = dict(imports=['a2mim_plugin'], allow_failed_imports=False)

model = dict(
    backbone=dict(
        _delete_=True,
        type='BEiTViT',
        arch='base',
        img_size=224,
        patch_size=16,
        drop_path_rate=0.,
        use_abs_pos_emb=True,
        use_rel_pos_bias=True,
        use_shared_rel_pos_bias=False,
        layer_scale_init_value=0.1,
        out_type='cls_token',
        final_norm=True,
        frozen_stages=12,  # = num_layers: patch embedding, tokens, blocks and ln1 frozen
        # Strict: every backbone tensor comes from the checkpoint (A2MIM's mask_token and
        # mask_gamma may stay unused).
        init_cfg=dict(type='Pretrained', checkpoint='', prefix='backbone.', strict=True)),
    neck=dict(type='ClsBatchNormNeck', input_features=768),
    head=dict(num_classes=1000, in_channels=768))

# Checkpoints written atomically (an interrupted write never replaces the last good one).
default_hooks = dict(checkpoint=dict(type='AtomicCheckpointHook', interval=10, max_keep_ckpts=3))
