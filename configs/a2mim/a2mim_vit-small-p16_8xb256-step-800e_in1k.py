# A2MIM ViT-S/16 (768-d, 8 layers), 800 epochs on ImageNet-1K, 8 GPUs x 256 = 2048.
# Official: openmixup configs/selfsup/a2mim/imagenet/vit_small_l0_sz224_8xb256_step_ep800.py
# Fine-tune: configs/a2mim/benchmarks/
#            vit-small-p16_a2mim-800e-pre_8xb128-amp-coslr-200e_in1k.py (82.1)
#
# Precision: the official config sets fp16=False and this file follows it (plain
# OptimWrapper); the released checkpoint (`..._4xb512_step_fp16_ep800`) was trained with fp16 -
# run with `--amp` to match that instead. The head computes its FFT in fp32 either way.
_base_ = [
    '../_base_/models/a2mim_vit-small-p16.py',
    '../_base_/datasets/imagenet_a2mim_vit-p16.py',
    '../_base_/schedules/a2mim_vit_adamw-step-800e.py',
    '../_base_/default_runtime_pretrain.py',
]
custom_imports = dict(imports=['a2mim_plugin'], allow_failed_imports=False)

train_dataloader = dict(batch_size=256)
