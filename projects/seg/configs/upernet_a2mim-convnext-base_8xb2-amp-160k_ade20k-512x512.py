# UperNet with an A2MIM ConvNeXt-Base on ADE20K, 512x512 crops, 160k iterations, 8 GPUs x 2
# images, mixed precision. The recipe of the ConvNeXt-Small config (MMSegmentation's ConvNeXt
# UperNet, whose Small and Base configs differ only in the model) with the Base arch: drop path
# 0.4 and the Base channels (the auxiliary head reads the 512-channel third stage; the official
# base hard-codes 384, wrong for Base).
_base_ = './upernet_a2mim-convnext-small_8xb2-amp-160k_ade20k-512x512.py'

# The A2MIM checkpoint. Overriding this variable with --cfg-options has no effect (it is
# substituted when the file is read); override model.backbone.init_cfg.checkpoint instead.
pretrained = ''

model = dict(
    backbone=dict(arch='base', drop_path_rate=0.4, init_cfg=dict(checkpoint=pretrained)),
    decode_head=dict(in_channels=[128, 256, 512, 1024]),
    auxiliary_head=dict(in_channels=512))
