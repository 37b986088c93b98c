# A2MIM ConvNeXt-Base, 300 epochs on ImageNet-1K, 8 GPUs x 256 = 2048, mixed precision.
# Official: openmixup configs/selfsup/a2mim/imagenet/convnext_b_l3_sz224_init_8xb256_cos_ep300.py
# Fine-tune: configs/a2mim/benchmarks/
#            convnext-base_a2mim-300e-pre_8xb256-accu2-amp-coslr-300e_in1k.py (84.1)
# Mask layer 3 of ConvNeXt is at stride 32 (7x7), hence model_patch_size 32. No Fourier loss
# (official head override fft_weight=0). The A2MIM-repo copy of the ConvNeXt-B config points
# to a missing model base; this file uses the openmixup one.
_base_ = [
    '../_base_/models/a2mim_convnext-small.py',
    '../_base_/datasets/imagenet_a2mim_cnn-p32.py',
    '../_base_/schedules/a2mim_convnext_adamw-coslr-300e.py',
    '../_base_/default_runtime_pretrain.py',
]
custom_imports = dict(imports=['a2mim_plugin'], allow_failed_imports=False)

model = dict(
    backbone=dict(arch='base'),
    neck=dict(in_channels=1024))
