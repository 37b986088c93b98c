# SimMIM baseline of the A2MIM paper: ViT-S/16 (768-d, 8 layers), 800 epochs, 8 x 256 = 2048,
# mixed precision.
# Official: openmixup configs/selfsup/simmim/imagenet/vit_small_sz224_8xb256_step_fp16_ep800.py
# Fine-tune: configs/a2mim/benchmarks/
#            vit-small-p16_a2mim-simmim-800e-pre_8xb128-amp-coslr-100e_in1k.py (81.7)
#
# Same backbone, decoder, data and schedule as A2MIM; the differences are SimMIM's: the masked
# pixels are left untouched (input_fill=None; the official 'zero' mask colour is a no-op), the
# mask token *replaces* the masked patch embeddings, and the loss is plain L1 on masked pixels.
_base_ = [
    '../_base_/models/a2mim_vit-small-p16.py',
    '../_base_/datasets/imagenet_a2mim_vit-p16.py',
    '../_base_/schedules/a2mim_vit_adamw-step-800e.py',
    '../_base_/default_runtime_pretrain.py',
]
custom_imports = dict(imports=['a2mim_plugin'], allow_failed_imports=False)

model = dict(
    input_fill=None,
    backbone=dict(replace=True),
    head=dict(
        _delete_=True, type='A2MIMHead', loss=dict(type='ElementwiseL1Loss')))

train_dataloader = dict(batch_size=256)
optim_wrapper = dict(type='AmpOptimWrapper', loss_scale='dynamic')
