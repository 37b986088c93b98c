# Fine-tuning of the A2MIM ResNet-152 (300-epoch pre-training) on ImageNet-1K,
# RSB A3 (100 epochs at 160 px, tested at 224 px). No published number for this row.
# Official: the R-50 recipe openmixup configs/benchmarks/classification/imagenet/
#           r50_rsb_a3_ft_sz160_4xb512_cos_fp16_ep100.py applied to ResNet-152 (there is
#           no official A3 config for this depth).
_base_ = '../../_base_/finetune/resnet_rsb-a3.py'
custom_imports = dict(imports=['a2mim_plugin'], allow_failed_imports=False)

# Pre-trained weights: the pre-training run's last checkpoint (or its backbone-only export from
# tools/export_backbone.py; both hold `backbone.*` keys). Override on the command line with
#   --cfg-options model.backbone.init_cfg.checkpoint=PATH
pretrained = 'work_dirs/a2mim_resnet152_8xb256-coslr-300e_in1k/epoch_300.pth'

model = dict(
    backbone=dict(
        depth=152, init_cfg=dict(checkpoint=pretrained)))
