# A2MIM ResNet-101, 300 epochs on ImageNet-1K, 8 GPUs x 256 = 2048, fp32.
# Official: openmixup configs/selfsup/a2mim/imagenet/r101_l3_sz224_init_8xb256_cos_ep300.py
# Fine-tune: configs/a2mim/benchmarks/resnet101_a2mim-300e-pre_8xb256-amp-rsb-a2-300e_in1k.py (81.9)
#            configs/a2mim/benchmarks/resnet101_a2mim-300e-pre_4xb512-amp-rsb-a3-100e_in1k.py
# Loss: focal L1 + 0.1 x the *non-focal* Fourier loss (focal L1 on the complex spectra).
_base_ = [
    '../_base_/models/a2mim_resnet50.py',
    '../_base_/datasets/imagenet_a2mim_cnn-p16.py',
    '../_base_/schedules/a2mim_resnet_adamw-coslr-300e.py',
    '../_base_/default_runtime_pretrain.py',
]
custom_imports = dict(imports=['a2mim_plugin'], allow_failed_imports=False)

model = dict(
    backbone=dict(depth=101),
    head=dict(fft_weight=0.1, fft_focal=False))
