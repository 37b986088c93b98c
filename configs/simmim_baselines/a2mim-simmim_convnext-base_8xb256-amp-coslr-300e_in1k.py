# SimMIM baseline of the A2MIM paper: ConvNeXt-Base, 300 epochs, 8 x 256 = 2048, mixed
# precision.
# Official: openmixup configs/selfsup/simmim/imagenet/convnext_base_sz224_8xb256_fp16_ep300.py
# Layout: the official file trains 256 per GPU with 2 accumulation steps ("bs256 x 4gpus x 2 =
# bs2048", whatever its name says); this file keeps its name's 8 x 256 x 1. Same 2048 per
# optimizer step, same 256 per GPU, same LR curve in epochs, and a LayerNorm network without
# the Fourier term has no per-GPU batch statistic, so the two layouts train alike. On 4 GPUs
# use --cfg-options optim_wrapper.accumulative_counts=2 for the official layout.
# Fine-tune: configs/a2mim/benchmarks/
#            convnext-base_a2mim-simmim-300e-pre_8xb256-accu2-amp-coslr-300e_in1k.py
#
# As the official ConvNeXt baseline: mask token after the stem (mask_layer 0, stride 4, so
# model_patch_size 4), *added* to the features (replace=False, no gamma), untouched input
# pixels, plain L1 on masked pixels, no Fourier loss, LR 2e-4 x 2048 / 512.
# Data: RandomResizedCrop scale (0.67, 1) as the official SimMIM dataset base.
# Optimizer groups as the official SimMIM config: biases, gammas and mask_token without weight
# decay; mask_token at the base LR (the x0.1 belongs to the A2MIM CNN rows).
_base_ = [
    '../_base_/models/a2mim_convnext-small.py',
    '../_base_/datasets/imagenet_a2mim_cnn-p4.py',
    '../_base_/schedules/a2mim_convnext_adamw-coslr-300e.py',
    '../_base_/default_runtime_pretrain.py',
]
custom_imports = dict(imports=['a2mim_plugin'], allow_failed_imports=False)

model = dict(
    input_fill=None,
    backbone=dict(arch='base', mask_layer=0, replace=False, mask_init=0.),
    neck=dict(in_channels=1024),
    head=dict(
        _delete_=True, type='A2MIMHead', loss=dict(type='ElementwiseL1Loss')))

optim_wrapper = dict(
    optimizer=dict(lr=2e-4 * 2048 / 512),
    paramwise_cfg=dict(custom_keys={'mask_token': dict(decay_mult=0., lr_mult=1.)}))
