# Fine-tuning of the SimMIM-baseline ViT-S/16 (800-epoch pre-training) on ImageNet-1K,
# BEiT/SimMIM protocol, 100 epochs. Published top-1: 81.7.
# Official: openmixup configs/benchmarks/classification/imagenet/
#           vit_small_p16_swin_ft_simmim_sz224_8xb128_cos_ep100.py
_base_ = '../../_base_/finetune/vit-p16_beit-protocol.py'
custom_imports = dict(imports=['a2mim_plugin'], allow_failed_imports=False)

# Pre-trained weights: the pre-training run's last checkpoint (or its backbone-only export from
# tools/export_backbone.py; both hold `backbone.*` keys). Override on the command line with
#   --cfg-options model.backbone.init_cfg.checkpoint=PATH
pretrained = 'work_dirs/a2mim-simmim_vit-small-p16_8xb256-amp-step-800e_in1k/epoch_800.pth'

model = dict(
    backbone=dict(arch='small', init_cfg=dict(checkpoint=pretrained)))

train_cfg = dict(max_epochs=100)
