# UperNet with an A2MIM ViT-B/16 on ADE20K, 512x512 crops, 160k iterations, 8 GPUs x 2 images.
# The recipe of the official `upernet_beit_base_8x2_512x512_160k_ade20k.py` (MMSegmentation 0.x)
# on MMSegmentation 1.x: MMPretrain's BEiTViT (the A2MIM pre-training ViT: absolute and
# per-block relative position embeddings, layer scale 0.1, q/v bias), feature maps of blocks
# 4/6/8/12 rescaled x4/x2/x1/x0.5 by Feature2Pyramid, UPerHead (768 ch) + FCN auxiliary head
# (0.4), AdamW 4e-4 with layer-wise lr decay 0.65, linear warm-up then poly decay, sliding-window
# test. Set the pre-trained checkpoint below or with
#   --cfg-options model.backbone.init_cfg.checkpoint=PATH
# (a full A2MIM pre-training checkpoint or the output of tools/export_backbone.py).
_base_ = [
    'mmseg::_base_/models/upernet_mae.py', 'mmseg::_base_/datasets/ade20k.py',
    'mmseg::_base_/default_runtime.py', 'mmseg::_base_/schedules/schedule_160k.py'
]
custom_imports = dict(
    imports=['a2mim_plugin', 'mmpretrain.models'],
    allow_failed_imports=False)

# The A2MIM checkpoint. Overriding this variable with --cfg-options has no effect (it is
# substituted when the file is read); override model.backbone.init_cfg.checkpoint instead.
pretrained = ''

crop_size = (512, 512)
data_preprocessor = dict(size=crop_size)
model = dict(
    data_preprocessor=data_preprocessor,
    pretrained=None,
    backbone=dict(
        _delete_=True,
        type='mmpretrain.BEiTViT',
        arch='base',
        img_size=512,
        patch_size=16,
        drop_path_rate=0.1,
        use_abs_pos_emb=True,
        use_rel_pos_bias=True,
        use_shared_rel_pos_bias=False,
        layer_scale_init_value=0.1,
        out_type='featmap',
        out_indices=(3, 5, 7, 11),
        final_norm=False,
        # The 224-px position embedding and the relative position bias tables are resized to
        # the 32x32 grid while loading (BEiTViT's load hooks); the relative position index
        # buffers are rebuilt for that grid, so they are not taken from the checkpoint.
        # Unused checkpoint keys: the mask token and the final norm, which this protocol
        # drops (final_norm=False: the blocks' outputs go to the neck un-normed).
        init_cfg=dict(
            type='Pretrained',  # a2mim_plugin's strict-capable Pretrained
            checkpoint=pretrained,
            strict=True,
            prefix='backbone.',
            allow_missing=[r'\.relative_position_index$'],
            ignore_unexpected=[r'(^|\.)mask_token$', r'(^|\.)mask_gamma$', r'^ln1\.'])),
    neck=dict(embed_dim=768, rescales=[4, 2, 1, 0.5]),
    decode_head=dict(in_channels=[768, 768, 768, 768], channels=768, num_classes=150),
    auxiliary_head=dict(in_channels=768, num_classes=150),
    test_cfg=dict(mode='slide', crop_size=crop_size, stride=(341, 341)))

# Layer-wise lr decay from BEiTViT.get_layer_depth: patch/position embeddings x0.65^13,
# block i x0.65^(12-i), neck and heads x1 (a2mim_plugin's constructor, MMPretrain's keys).
# No weight decay on 1-D parameters (flat_decay_mult) and biases (bias_decay_mult), as
# MMSegmentation's constructor in the official BEiT / A2MIM configs.
optim_wrapper = dict(
    _delete_=True,
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=4e-4, betas=(0.9, 0.999), weight_decay=0.05),
    constructor='BackboneLayerDecayOptimWrapperConstructor',
    paramwise_cfg=dict(layer_decay_rate=0.65, flat_decay_mult=0., bias_decay_mult=0.))
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-6, by_epoch=False, begin=0, end=1500),
    dict(type='PolyLR', eta_min=0.0, power=1.0, begin=1500, end=160000, by_epoch=False)
]

# 8 GPUs x 2 images.
train_dataloader = dict(batch_size=2)
val_dataloader = dict(batch_size=1)
test_dataloader = val_dataloader

# Checkpoints are written atomically (temporary file, fsync, rename; old ones are deleted
# afterwards), so a job killed mid-write resumes from the previous complete checkpoint.
# CompileReadyHook: BEiTViT's NumPy drop-path rates -> Python floats (no graph break per
# block under compile=True); values unchanged.
default_hooks = dict(checkpoint=dict(type='mmpretrain.AtomicCheckpointHook'),
                     compile_ready=dict(type='mmpretrain.CompileReadyHook'))
