# A2MIM Swin-T, 100 epochs on ImageNet-1K at 192 px, 8 GPUs x 128 x 2 accumulation = 2048.
# Official model base: openmixup configs/selfsup/_base_/models/a2mim/swin_tiny.py (no published
# ImageNet row): the Swin-B config with the tiny arch; schedule, data and loss are the same.
# A stock MMPretrain SwinTransformer: the mask token is injected with model.mask_token (the
# generic mechanism), so the backbone weights load into a plain SwinTransformer downstream.
_base_ = './a2mim_swin-base-w6_8xb128-accu2-coslr-100e_in1k-192px.py'

model = dict(backbone=dict(arch='tiny'), neck=dict(in_channels=768))
