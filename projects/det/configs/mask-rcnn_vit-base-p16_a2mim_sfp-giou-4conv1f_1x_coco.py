# Mask R-CNN with an A2MIM ViT-B/16, 1x (12 epochs, LR steps at 9 and 11).
# Official: A2MIM det_mmdetection/configs/coco/mask-rcnn_vit_base_giou_4conv1f_1x_coco.py, which
# mixes mmdet 2.x/3.x syntax and feeds four stride-16 ViT maps to an FPN that declares strides
# 4-32. Here a simple feature pyramid (x4, x2, x1, x0.5) turns the four stride-16 maps of
# blocks 4, 6, 8 and 12 into strides 4, 8, 16 and 32 before the FPN.
#
# Launch with the repository root on PYTHONPATH (projects.det.a2mim_det: SimpleFeaturePyramid):
#   PYTHONPATH=$PWD mim train mmdet projects/det/configs/THIS.py --gpus 8 --launcher pytorch \
#       --cfg-options model.backbone.init_cfg.checkpoint=PRETRAIN.pth [--amp]
#
# The pre-trained checkpoint is set in ONE place, `pretrained` below (on the command line:
# --cfg-options model.backbone.init_cfg.checkpoint=P). Full A2MIM pre-training checkpoints and
# tools/export_backbone.py outputs both load (prefix 'backbone.'); anything that does not load
# completely stops the run; without a checkpoint the model refuses to initialise.
_base_ = 'mmdet::mask_rcnn/mask-rcnn_r50_fpn_1x_coco.py'
custom_imports = dict(
    imports=['a2mim_plugin', 'projects.det.a2mim_det'], allow_failed_imports=False)

pretrained = ''  # path of the A2MIM checkpoint (full or exported)

# The BEiT ViT's relative position bias is built for one token grid, so every image is padded
# to one fixed canvas (the pre-trained 14x14 tables are resized to 64x64 at load time).
image_size = (1024, 1024)
norm_cfg = dict(type='SyncBN', requires_grad=True)
model = dict(
    backbone=dict(
        _delete_=True,
        # MMPretrain's BEiTViT. The literal 'Pretrained' init below is applied after the
        # layers' own init; the 224-px position embedding and relative position bias tables are
        # resized to the 64x64 grid by its load hooks (BEiT's spline scheme; a2mim_plugin
        # repairs it where SciPy >= 1.14 lacks interp2d).
        type='mmpretrain.BEiTViT',
        arch='base',
        img_size=image_size,
        patch_size=16,
        drop_path_rate=0.2,
        use_abs_pos_emb=True,
        use_rel_pos_bias=True,
        use_shared_rel_pos_bias=False,
        layer_scale_init_value=0.1,
        out_type='featmap',
        out_indices=(3, 5, 7, 11),
        final_norm=False,
        init_cfg=dict(
            type='Pretrained',  # a2mim_plugin's strict-capable Pretrained
            strict=True,
            checkpoint=pretrained,
            prefix='backbone.',
            # rebuilt for the new grid whenever the rel-pos tables are resized
            allow_missing=[r'\.relative_position_index$'],
            # the pre-training final norm (unused with final_norm=False) and the mask token
            ignore_unexpected=[r'^ln1\.', r'(^|\.)mask_token$', r'(^|\.)mask_gamma$'])),
    neck=[
        dict(type='SimpleFeaturePyramid', embed_dims=768, rescales=(4, 2, 1, 0.5),
             norm_cfg=norm_cfg),
        dict(type='FPN', in_channels=[768, 768, 768, 768], out_channels=256, num_outs=5,
             norm_cfg=norm_cfg),
    ],
    roi_head=dict(
        bbox_head=dict(
            type='Shared4Conv1FCBBoxHead',
            norm_cfg=norm_cfg,
            reg_decoded_bbox=True,
            loss_bbox=dict(_delete_=True, type='GIoULoss', loss_weight=10.0)),
        mask_head=dict(norm_cfg=norm_cfg)))

# DETR-style AutoAugment (as the official config), on a fixed 1024 x 1024 canvas.
multi_scales = [(1024, s) for s in range(480, 801, 32)]
train_pipeline = [
    dict(type='LoadImageFromFile', backend_args={{_base_.backend_args}}),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(type='RandomFlip', prob=0.5),
    dict(
        type='RandomChoice',
        transforms=[
            [dict(type='RandomChoiceResize', scales=multi_scales, keep_ratio=True)],
            [
                dict(type='RandomChoiceResize', scales=[(1024, 400), (1024, 500), (1024, 600)],
                     keep_ratio=True),
                dict(type='RandomCrop', crop_type='absolute_range', crop_size=(384, 600),
                     allow_negative_crop=True),
                dict(type='RandomChoiceResize', scales=multi_scales, keep_ratio=True),
            ],
        ]),
    dict(type='FilterAnnotations', min_gt_bbox_wh=(1e-2, 1e-2)),
    dict(type='Pad', size=image_size, pad_val=dict(img=(114, 114, 114))),
    dict(type='PackDetInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile', backend_args={{_base_.backend_args}}),
    dict(type='Resize', scale=image_size, keep_ratio=True),
    dict(type='Pad', size=image_size, pad_val=dict(img=(114, 114, 114))),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(type='PackDetInputs',
         meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor')),
]
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))
val_dataloader = dict(dataset=dict(pipeline=test_pipeline))
test_dataloader = val_dataloader

# AdamW 3e-4, wd 0.05, no decay on norms, biases, position embeddings and rel-pos tables (as
# the official config), plus layer-wise LR decay 0.75 from the backbone's get_layer_depth
# (not in the official config): patch embedding at 3e-4 * 0.75^13, block i at
# 3e-4 * 0.75^(12 - i), neck and heads at 3e-4. 0.75 rather than the fine-tuning 0.65
# because detection moves the backbone further from its pre-trained state.
optim_wrapper = dict(
    _delete_=True,
    type='OptimWrapper',
    constructor='BackboneLayerDecayOptimWrapperConstructor',
    optimizer=dict(type='AdamW', lr=3e-4, betas=(0.9, 0.999), weight_decay=0.05),
    paramwise_cfg=dict(
        layer_decay_rate=0.75,
        norm_decay_mult=0.,
        bias_decay_mult=0.,
        flat_decay_mult=0.,
        custom_keys={
            'pos_embed': dict(decay_mult=0.),
            'cls_token': dict(decay_mult=0.),
            'relative_position_bias_table': dict(decay_mult=0.),
        }))
train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=12, val_interval=1)
param_scheduler = [
    dict(type='LinearLR', start_factor=0.001, by_epoch=False, begin=0, end=500),
    dict(type='MultiStepLR', begin=0, end=12, by_epoch=True, milestones=[9, 11], gamma=0.1),
]
auto_scale_lr = dict(enable=False, base_batch_size=16)

# Checkpoints are written atomically (temporary file, fsync, rename; old ones are deleted
# afterwards), so a job killed mid-write resumes from the previous complete checkpoint.
# CompileReadyHook: BEiTViT's NumPy drop-path rates -> Python floats (no graph break per
# block under compile=True); values unchanged.
default_hooks = dict(checkpoint=dict(type='mmpretrain.AtomicCheckpointHook'),
                     compile_ready=dict(type='mmpretrain.CompileReadyHook'))
