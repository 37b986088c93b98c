# SimMIM baseline of the A2MIM Swin-T config: the SimMIM Swin-B baseline with the tiny arch
# (official: openmixup configs/selfsup/_base_/models/simmim/swin_tiny.py with
# configs/selfsup/simmim/imagenet/swin_base_sz192_8xb128_accu2_cos_ep100.py). On the same weights
# and batch it gives MMPretrain's own SimMIM + SimMIMSwinTransformer loss and gradients
# (tests/test_models/test_swin.py).
_base_ = './a2mim-simmim_swin-base-w6_8xb128-accu2-coslr-100e_in1k-192px.py'

model = dict(backbone=dict(arch='tiny'), neck=dict(in_channels=768))
