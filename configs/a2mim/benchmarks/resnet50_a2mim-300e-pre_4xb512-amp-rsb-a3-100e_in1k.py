# Fine-tuning of the A2MIM ResNet-50 (300-epoch pre-training) on ImageNet-1K,
# RSB A3 (100 epochs at 160 px, tested at 224 px). Published top-1: 78.9.
# Official: openmixup configs/benchmarks/classification/imagenet/
#           r50_rsb_a3_ft_sz160_4xb512_cos_fp16_ep100.py
_base_ = '../../_base_/finetune/resnet_rsb-a3.py'
custom_imports = dict(imports=['a2mim_plugin'], allow_failed_imports=False)

# Pre-trained weights: the pre-training run's last checkpoint (or its backbone-only export from
# tools/export_backbone.py; both hold `backbone.*` keys). Override on the command line with
#   --cfg-options model.backbone.init_cfg.checkpoint=PATH
pretrained = 'work_dirs/a2mim_resnet50_8xb256-coslr-300e_in1k/epoch_300.pth'

model = dict(
    backbone=dict(
        depth=50, init_cfg=dict(checkpoint=pretrained)))
