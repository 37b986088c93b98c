# UperNet with an A2MIM ConvNeXt-Base on ADE20K, 512x512 crops, 160k iterations, 8 GPUs x 2
# images, mixed precision. Model and schedule of MMSegmentation's ConvNeXt-Base UperNet recipe
# (AdamW 1e-4, stage-wise lr decay 0.9, 1500 warm-up iterations, poly decay, sliding-window
# test), with the A2MIM checkpoint loaded strictly. Fixes of the official (0.x) base
# `upernet_convnext.py`: 150 ADE20K classes (not 19) and an auxiliary head that reads the
# third-stage channels of this arch (512; the official base hard-codes 384, wrong for
# ConvNeXt-B).
# Set the pre-trained checkpoint below or with
#   --cfg-options model.backbone.init_cfg.checkpoint=PATH
# (a full A2MIM pre-training checkpoint or the output of tools/export_backbone.py).
_base_ = 'mmseg::convnext/convnext-base_upernet_8xb2-amp-160k_ade20k-512x512.py'
custom_imports = dict(
    imports=['a2mim_plugin', 'mmpretrain.models'],
    allow_failed_imports=False)

# The A2MIM checkpoint. Overriding this variable with --cfg-options has no effect (it is
# substituted when the file is read); override model.backbone.init_cfg.checkpoint instead.
pretrained = ''

model = dict(
    pretrained=None,
    backbone=dict(
        _delete_=True,
        type='mmpretrain.ConvNeXt',
        arch='base',
        out_indices=(0, 1, 2, 3),
        drop_path_rate=0.4,
        layer_scale_init_value=1.0,
        gap_before_final_norm=False,
        # Pre-training normed only the last stage (norm3); the norms of stages 0-2 that feed
        # the decoder are new by design. The mask token and its gamma are not used.
        init_cfg=dict(
            type='Pretrained',  # a2mim_plugin's strict-capable Pretrained
            checkpoint=pretrained,
            strict=True,
            prefix='backbone.',
            allow_missing=[r'^norm[012]\.'])),
    decode_head=dict(in_channels=[128, 256, 512, 1024], num_classes=150),
    auxiliary_head=dict(in_channels=512, num_classes=150))

# Checkpoints are written atomically (temporary file, fsync, rename; old ones are deleted
# afterwards), so a job killed mid-write resumes from the previous complete checkpoint.
default_hooks = dict(checkpoint=dict(type='mmpretrain.AtomicCheckpointHook'))
