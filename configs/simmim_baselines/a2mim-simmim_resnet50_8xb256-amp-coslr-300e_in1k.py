# SimMIM baseline of the A2MIM paper: ResNet-50, 300 epochs, 8 x 256 = 2048, mixed precision.
# Official: openmixup configs/selfsup/simmim/imagenet/r50_sz224_8xb256_fp16_ep300.py
# (name by analogy with R-101/152/200; the R-50 SimMIM row, 79.9, is only in the headline table)
# Fine-tune: configs/a2mim/benchmarks/resnet50_a2mim-simmim-300e-pre_8xb256-amp-rsb-a2-300e_in1k.py
#
# SimMIM on a CNN as the official baseline does it: the mask token *replaces* the features
# after the stem (mask_layer 0, stride 4, so model_patch_size 4), the input pixels are left
# untouched (the official 'zero' mask colour is a no-op, so the 7x7 stem still sees the masked
# pixels), plain L1 on masked pixels, no Fourier loss, LR 2e-4 x 2048 / 512.
# Data: RandomResizedCrop scale (0.67, 1) as the official SimMIM dataset base.
# Optimizer groups as the official SimMIM config: bn weights, biases and mask_token without
# weight decay; mask_token at the base LR (the x0.1 belongs to the A2MIM CNN rows).
_base_ = [
    '../_base_/models/a2mim_resnet50.py',
    '../_base_/datasets/imagenet_a2mim_cnn-p4.py',
    '../_base_/schedules/a2mim_resnet_adamw-coslr-300e.py',
    '../_base_/default_runtime_pretrain.py',
]
custom_imports = dict(imports=['a2mim_plugin'], allow_failed_imports=False)

model = dict(
    input_fill=None,
    backbone=dict(depth=50, mask_layer=0, replace=True, mask_init=0.),
    head=dict(
        _delete_=True, type='A2MIMHead', loss=dict(type='ElementwiseL1Loss')))

optim_wrapper = dict(
    type='AmpOptimWrapper',
    loss_scale='dynamic',
    optimizer=dict(lr=2e-4 * 2048 / 512),
    paramwise_cfg=dict(custom_keys={'mask_token': dict(decay_mult=0., lr_mult=1.)}))
