# Mask R-CNN with an A2MIM ConvNeXt-S and FPN, 1x (12 epochs, LR steps at 8 and 11),
# multi-scale training 640-800, SyncBN in the neck and heads. (No official A2MIM ConvNeXt
# detection config exists; the optimizer follows MMDetection's ConvNeXt recipes: AdamW 2e-4,
# wd 0.05, layer-wise LR decay 0.7 over ConvNeXt's 12-layer grouping.)
#
# Launch (a2mim_plugin registers the layer-decay constructor into MMDetection):
#   mim train mmdet projects/det/configs/THIS.py --gpus 8 --launcher pytorch \
#       --cfg-options model.backbone.init_cfg.checkpoint=PRETRAIN.pth
#
# The pre-trained checkpoint is set in ONE place, `pretrained` below (on the command line:
# --cfg-options model.backbone.init_cfg.checkpoint=P). Full A2MIM pre-training checkpoints and
# tools/export_backbone.py outputs both load (prefix 'backbone.'); anything that does not load
# completely stops the run; without a checkpoint the model refuses to initialise.
_base_ = './mask-rcnn_r50_fpn_a2mim_ms-1x_coco.py'
custom_imports = dict(imports=['a2mim_plugin'], allow_failed_imports=False)

pretrained = ''  # path of the A2MIM checkpoint (full or exported)

model = dict(
    backbone=dict(
        _delete_=True,
        type='mmpretrain.ConvNeXt',
        arch='small',
        out_indices=(0, 1, 2, 3),
        drop_path_rate=0.2,
        layer_scale_init_value=1e-6,
        gap_before_final_norm=False,
        init_cfg=dict(
            type='Pretrained',  # a2mim_plugin's strict-capable Pretrained
            strict=True,
            checkpoint=pretrained,
            prefix='backbone.',
            # pre-training normed only the last stage: the norms of stages 0-2 are new
            allow_missing=[r'^norm[012]\.'])),
    neck=dict(in_channels=[96, 192, 384, 768]))

optim_wrapper = dict(
    _delete_=True,
    type='OptimWrapper',
    constructor='BackboneLayerDecayOptimWrapperConstructor',
    optimizer=dict(type='AdamW', lr=2e-4, betas=(0.9, 0.999), weight_decay=0.05),
    paramwise_cfg=dict(layer_decay_rate=0.7, norm_decay_mult=0., bias_decay_mult=0.))
