# SimMIM baseline of the A2MIM paper: ViT-L/16, 800 epochs, 8 x 128 x 2 accumulation = 2048,
# mixed precision (the official config sets fp16=True).
# Official: openmixup configs/selfsup/simmim/imagenet/
#           vit_large_sz224_8xb128_accu2_step_fp16_ep800.py
# Fine-tune: configs/a2mim/benchmarks/
#            vit-large-p16_a2mim-simmim-800e-pre_8xb64-accu2-amp-coslr-100e_in1k.py (85.6)
_base_ = [
    '../_base_/models/a2mim_vit-small-p16.py',
    '../_base_/datasets/imagenet_a2mim_vit-p16.py',
    '../_base_/schedules/a2mim_vit_adamw-step-800e.py',
    '../_base_/default_runtime_pretrain.py',
]
custom_imports = dict(imports=['a2mim_plugin'], allow_failed_imports=False)

model = dict(
    input_fill=None,
    backbone=dict(arch='large', replace=True),
    neck=dict(in_channels=1024),
    head=dict(
        _delete_=True, type='A2MIMHead', loss=dict(type='ElementwiseL1Loss')))

train_dataloader = dict(batch_size=128)
optim_wrapper = dict(
    type='AmpOptimWrapper', loss_scale='dynamic', accumulative_counts=2)
# mmengine's --auto-scale-lr ignores accumulative_counts: 8 x 128 stands for 2048 per step.
auto_scale_lr = dict(base_batch_size=1024)
