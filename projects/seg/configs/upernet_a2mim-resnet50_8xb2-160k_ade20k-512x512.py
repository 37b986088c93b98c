# UperNet with an A2MIM ResNet-50 on ADE20K, 512x512 crops, 160k iterations, 8 GPUs x 2 images.
# The official code has only the model base (`upernet_r50.py`, MMSegmentation 0.x, 19 classes)
# and no top-level config although the paper reports this row. A2MIM pre-trains a plain
# pytorch-style ResNet (7x7 stem), so the backbone is MMPretrain's ResNet - not MMSegmentation's
# default ResNetV1c, whose deep stem would leave the stem random - with SyncBN and every
# pre-trained key loaded. Schedule: MMSegmentation's UperNet recipe (SGD 0.01, poly 0.9).
# Set the pre-trained checkpoint below or with
#   --cfg-options model.backbone.init_cfg.checkpoint=PATH
# (a full A2MIM pre-training checkpoint or the output of tools/export_backbone.py).
_base_ = [
    'mmseg::_base_/models/upernet_r50.py', 'mmseg::_base_/datasets/ade20k.py',
    'mmseg::_base_/default_runtime.py', 'mmseg::_base_/schedules/schedule_160k.py'
]
custom_imports = dict(
    imports=['a2mim_plugin', 'mmpretrain.models'],
    allow_failed_imports=False)

# The A2MIM checkpoint. Overriding this variable with --cfg-options has no effect (it is
# substituted when the file is read); override model.backbone.init_cfg.checkpoint instead.
pretrained = ''

crop_size = (512, 512)
norm_cfg = dict(type='SyncBN', requires_grad=True)
data_preprocessor = dict(size=crop_size)
model = dict(
    data_preprocessor=data_preprocessor,
    pretrained=None,
    backbone=dict(
        _delete_=True,
        type='mmpretrain.ResNet',
        depth=50,
        num_stages=4,
        out_indices=(0, 1, 2, 3),
        style='pytorch',
        norm_cfg=norm_cfg,
        norm_eval=False,
        # Only the mask token and its gamma are pre-training-only keys.
        init_cfg=dict(
            type='Pretrained',  # a2mim_plugin's strict-capable Pretrained
            checkpoint=pretrained,
            prefix='backbone.',
            strict=True)),
    decode_head=dict(in_channels=[256, 512, 1024, 2048], num_classes=150),
    auxiliary_head=dict(in_channels=1024, num_classes=150))

# 8 GPUs x 2 images.
train_dataloader = dict(batch_size=2)
val_dataloader = dict(batch_size=1)
test_dataloader = val_dataloader

# Checkpoints are written atomically (temporary file, fsync, rename; old ones are deleted
# afterwards), so a job killed mid-write resumes from the previous complete checkpoint.
default_hooks = dict(checkpoint=dict(type='mmpretrain.AtomicCheckpointHook'))
