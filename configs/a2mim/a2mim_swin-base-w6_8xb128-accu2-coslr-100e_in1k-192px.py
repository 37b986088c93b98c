# A2MIM Swin-B, 100 epochs on ImageNet-1K at 192 px, 8 GPUs x 128 x 2 accumulation = 2048.
# Official model base: openmixup configs/selfsup/_base_/models/a2mim/swin_base.py (no published
# ImageNet row; the schedule is the official SimMIM Swin one, see the schedule base).
# A stock MMPretrain SwinTransformer: the mask token is injected with model.mask_token (the
# generic mechanism), so the backbone weights load into a plain SwinTransformer downstream.
_base_ = [
    '../_base_/models/a2mim_swin-base.py',
    '../_base_/datasets/imagenet_a2mim_swin-192px.py',
    '../_base_/schedules/a2mim_swin_adamw-coslr-100e.py',
    '../_base_/default_runtime_pretrain.py',
]
custom_imports = dict(imports=['a2mim_plugin'], allow_failed_imports=False)

model = dict(backbone=dict(arch='base'), neck=dict(in_channels=1024))

# k-NN evaluation at the pre-training resolution (Resize 219 + CenterCrop 192).
default_hooks = dict(knn_eval=dict(crop_size=192))
