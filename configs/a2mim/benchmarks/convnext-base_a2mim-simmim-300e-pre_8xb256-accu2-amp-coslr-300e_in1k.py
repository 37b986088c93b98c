# Fine-tuning of the SimMIM-baseline ConvNeXt-B (300-epoch pre-training) on ImageNet-1K,
# 300 epochs with the SparK-style AdamW recipe the official config uses (the README calls it
# "RSB A2"). Published top-1: 83.6.
# Official: openmixup configs/benchmarks/classification/imagenet/
#           convnext_b_spark_ft_sz224_8xb256_cos_fp16_ep300.py
_base_ = '../../_base_/finetune/convnext_spark-protocol.py'
custom_imports = dict(imports=['a2mim_plugin'], allow_failed_imports=False)

# Pre-trained weights: the pre-training run's last checkpoint (or its backbone-only export from
# tools/export_backbone.py; both hold `backbone.*` keys). Override on the command line with
#   --cfg-options model.backbone.init_cfg.checkpoint=PATH
pretrained = 'work_dirs/a2mim-simmim_convnext-base_8xb256-amp-coslr-300e_in1k/epoch_300.pth'

model = dict(
    backbone=dict(
        arch='base', drop_path_rate=0.5, init_cfg=dict(checkpoint=pretrained)),
    head=dict(in_channels=1024))
