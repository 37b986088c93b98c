# SimMIM baseline of the A2MIM paper: ViT-B/16, 800 epochs, 8 x 128 x 2 accumulation = 2048.
# Official: openmixup configs/selfsup/simmim/imagenet/vit_base_sz224_8xb128_accu2_step_fp16_ep800.py
# Fine-tune: configs/a2mim/benchmarks/
#            vit-base-p16_a2mim-simmim-800e-pre_4xb128-accu2-amp-coslr-100e_in1k.py (83.8)
#
# Precision: the official file *name* says fp16 but its content sets fp16=False. Every config
# here follows the official config's fp16 field, so this one runs in fp32 (use `--amp` for
# the fp16 variant the name suggests).
_base_ = [
    '../_base_/models/a2mim_vit-small-p16.py',
    '../_base_/datasets/imagenet_a2mim_vit-p16.py',
    '../_base_/schedules/a2mim_vit_adamw-step-800e.py',
    '../_base_/default_runtime_pretrain.py',
]
custom_imports = dict(imports=['a2mim_plugin'], allow_failed_imports=False)

model = dict(
    input_fill=None,
    backbone=dict(arch='base', replace=True),
    neck=dict(in_channels=768),
    head=dict(
        _delete_=True, type='A2MIMHead', loss=dict(type='ElementwiseL1Loss')))

train_dataloader = dict(batch_size=128)
optim_wrapper = dict(accumulative_counts=2)
# mmengine's --auto-scale-lr ignores accumulative_counts: 8 x 128 stands for 2048 per step.
auto_scale_lr = dict(base_batch_size=1024)
