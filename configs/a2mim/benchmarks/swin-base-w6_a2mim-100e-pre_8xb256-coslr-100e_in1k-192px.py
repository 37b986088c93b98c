# Fine-tuning of the A2MIM (or SimMIM-baseline) Swin-B (100-epoch pre-training at 192 px) on
# ImageNet-1K: MMPretrain's own SimMIM Swin-B fine-tuning recipe, unchanged
# (mmpretrain configs/simmim/benchmarks/swin-base-w6_8xb256-coslr-100e_in1k-192px.py, 82.7 after
# MMPretrain's SimMIM pre-training): 192 px, window 6, drop path 0.1, AdamW 5e-3 for 8 x 256 =
# 2048 with layer-wise LR decay 0.9, 20 warm-up epochs, cosine to 1e-6, grad clip 5, AMP.
# The pre-training weights load into MMPretrain's stock SwinTransformer (the mask token is a
# generic injection), strictly: any missing or unexpected backbone key stops the run.
_base_ = 'mmpretrain::simmim/benchmarks/swin-base-w6_8xb256-coslr-100e_in1k-192px.py'
custom_imports = dict(imports=['a2mim_plugin'], allow_failed_imports=False)

# Pre-trained weights: the pre-training run's last checkpoint (or its backbone-only export from
# tools/export_backbone.py; both hold `backbone.*` keys). Override on the command line with
#   --cfg-options model.backbone.init_cfg.checkpoint=PATH
pretrained = 'work_dirs/a2mim_swin-base-w6_8xb128-accu2-coslr-100e_in1k-192px/epoch_100.pth'

model = dict(
    backbone=dict(
        init_cfg=dict(type='Pretrained', checkpoint=pretrained, prefix='backbone.',
                      strict=True)))

# Inheriting an `mmpretrain::` base puts `_scope_` into its collate_fn, which mmengine would then
# pass to default_collate; the same function without it.
train_dataloader = dict(collate_fn=dict(_delete_=True, type='default_collate'))

default_hooks = dict(
    checkpoint=dict(type='AtomicCheckpointHook', interval=1, max_keep_ckpts=3),
    total_batch_check=dict(type='TotalBatchCheckHook', total_batch=2048))
