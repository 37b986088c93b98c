# Mask R-CNN R-50-FPN, 1x (12 epochs, LR steps at 8 and 11), multi-scale training, SyncBN in
# the backbone, neck and heads, from an A2MIM ResNet-50.
# Official: A2MIM det_mmdetection/configs/coco/mask-rcnn_r50_fpn_ms-1x_coco.py (mmdet 2.x/3.x
# hybrid), rewritten for MMDetection 3.3.0.
#
# The pre-trained checkpoint is set in ONE place, `pretrained` below (on the command line:
# --cfg-options model.backbone.init_cfg.checkpoint=P). Full A2MIM pre-training checkpoints and
# tools/export_backbone.py outputs both load (prefix 'backbone.'); anything that does not load
# completely stops the run; without a checkpoint the model refuses to initialise.
_base_ = 'mmdet::mask_rcnn/mask-rcnn_r50_fpn_1x_coco.py'
custom_imports = dict(imports=['a2mim_plugin'], allow_failed_imports=False)

pretrained = ''  # path of the A2MIM checkpoint (full or exported)

norm_cfg = dict(type='SyncBN', requires_grad=True)
model = dict(
    # MMDetection's ResNet has the parameter names of MMPretrain's (A2MIMResNet's) ResNet.
    backbone=dict(
        frozen_stages=-1,
        norm_cfg=norm_cfg,
        norm_eval=False,
        init_cfg=dict(
            _delete_=True,
            type='Pretrained',  # a2mim_plugin's strict-capable Pretrained
            strict=True,
            checkpoint=pretrained,
            prefix='backbone.')),
    neck=dict(norm_cfg=norm_cfg),
    roi_head=dict(
        bbox_head=dict(type='Shared4Conv1FCBBoxHead', norm_cfg=norm_cfg),
        mask_head=dict(norm_cfg=norm_cfg)))

# Multi-scale training: short side 640-800 (step 32), long side <= 1333.
train_pipeline = [
    dict(type='LoadImageFromFile', backend_args={{_base_.backend_args}}),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(
        type='RandomChoiceResize',
        scales=[(1333, 640), (1333, 672), (1333, 704), (1333, 736), (1333, 768),
                (1333, 800)],
        keep_ratio=True),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackDetInputs'),
]
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))

# SGD 0.02, momentum 0.9, wd 1e-4 (16 images per step), 12 epochs, steps [8, 11].
optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='SGD', lr=0.02, momentum=0.9, weight_decay=1e-4))
train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=12, val_interval=1)
param_scheduler = [
    dict(type='LinearLR', start_factor=0.001, by_epoch=False, begin=0, end=500),
    dict(type='MultiStepLR', begin=0, end=12, by_epoch=True, milestones=[8, 11], gamma=0.1),
]
auto_scale_lr = dict(enable=False, base_batch_size=16)

# Checkpoints are written atomically (temporary file, fsync, rename; old ones are deleted
# afterwards), so a job killed mid-write resumes from the previous complete checkpoint.
default_hooks = dict(checkpoint=dict(type='mmpretrain.AtomicCheckpointHook'))
