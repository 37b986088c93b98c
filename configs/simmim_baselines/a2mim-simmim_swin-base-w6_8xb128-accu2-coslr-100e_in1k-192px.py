# SimMIM baseline of the A2MIM Swin-B config: the same stock SwinTransformer, schedule and data;
# the token REPLACES the masked patch embeddings (replace=True), no RGB-mean fill, plain L1
# head without Fourier term. Official: openmixup configs/selfsup/_base_/models/simmim/swin_base.py
# with configs/selfsup/simmim/imagenet/swin_base_sz192_8xb128_accu2_cos_ep100.py. On the same
# weights and batch it gives MMPretrain's own SimMIM + SimMIMSwinTransformer loss and gradients
# (tests/test_models/test_swin.py).
_base_ = [
    '../_base_/models/a2mim_swin-base.py',
    '../_base_/datasets/imagenet_a2mim_swin-192px.py',
    '../_base_/schedules/a2mim_swin_adamw-coslr-100e.py',
    '../_base_/default_runtime_pretrain.py',
]
custom_imports = dict(imports=['a2mim_plugin'], allow_failed_imports=False)

model = dict(
    input_fill=None,
    backbone=dict(arch='base'),
    mask_token=dict(replace=True),
    neck=dict(in_channels=1024),
    head=dict(_delete_=True, type='A2MIMHead', loss=dict(type='ElementwiseL1Loss')))

# k-NN evaluation at the pre-training resolution (Resize 219 + CenterCrop 192).
default_hooks = dict(knn_eval=dict(crop_size=192))
