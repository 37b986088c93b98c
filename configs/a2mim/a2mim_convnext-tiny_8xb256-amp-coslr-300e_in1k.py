# A2MIM ConvNeXt-Tiny, 300 epochs on ImageNet-1K, 8 GPUs x 256 = 2048, mixed precision.
# Official: openmixup configs/selfsup/a2mim/imagenet/convnext_t_l3_sz224_init_8xb256_cos_ep300.py
# (model base `_base_/models/a2mim/convnext_t.py`).
# Fine-tune: configs/a2mim/benchmarks/
#            convnext-tiny_a2mim-300e-pre_8xb256-accu2-amp-coslr-400e_in1k.py
# As the ConvNeXt-S row: mask layer 3 (stride 32, 7x7), model_patch_size 32, gamma 1e-6, focal L1,
# no Fourier loss (the openmixup run config sets fft_weight=0; the A2MIM repository's copy of
# `convnext_t.py` has 0.5, see configs/a2mim/README.md).
_base_ = [
    '../_base_/models/a2mim_convnext-small.py',
    '../_base_/datasets/imagenet_a2mim_cnn-p32.py',
    '../_base_/schedules/a2mim_convnext_adamw-coslr-300e.py',
    '../_base_/default_runtime_pretrain.py',
]
custom_imports = dict(imports=['a2mim_plugin'], allow_failed_imports=False)

model = dict(
    backbone=dict(arch='tiny'),
    neck=dict(in_channels=768))
