# Fine-tuning of the A2MIM ResNet-200 (300-epoch pre-training) on ImageNet-1K,
# RSB A2 (300 epochs at 224 px). Published top-1: 83.0.
# Official: openmixup configs/benchmarks/classification/imagenet/
#           r200_rsb_a2_ft_sz224_8xb256_cos_fp16_ep300.py
# drop_path 0.2 as the official config;
# no EMA: only the official R-50 A2 config has one.
_base_ = '../../_base_/finetune/resnet_rsb-a2.py'
custom_imports = dict(imports=['a2mim_plugin'], allow_failed_imports=False)

# Pre-trained weights: the pre-training run's last checkpoint (or its backbone-only export from
# tools/export_backbone.py; both hold `backbone.*` keys). Override on the command line with
#   --cfg-options model.backbone.init_cfg.checkpoint=PATH
pretrained = 'work_dirs/a2mim_resnet200_8xb256-coslr-300e_in1k/epoch_300.pth'

# MMPretrain's stock ResNet stops at depth 152: ResNet-200 (Bottleneck, 3-24-36-3) is the
# plugin's A2MIMResNet without a mask token, which is then a plain ResNet with the same
# parameter names (the only non-stock part of any fine-tuning config).
model = dict(
    backbone=dict(
        type='A2MIMResNet',
        mask_token=None,
        depth=200, drop_path_rate=0.2, init_cfg=dict(checkpoint=pretrained)))
