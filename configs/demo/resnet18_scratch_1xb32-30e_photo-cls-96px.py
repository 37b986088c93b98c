# The randomly initialised ResNet-18 of the worked interaction example: the same classifier,
# data and schedule as resnet18_a2mim-demo-pre_1xb32-30e_photo-cls-96px.py, without the A2MIM
# pre-training (MMPretrain's default ResNet init).
#   mim train mmpretrain configs/demo/resnet18_scratch_1xb32-30e_photo-cls-96px.py
_base_ = './resnet18_a2mim-demo-pre_1xb32-30e_photo-cls-96px.py'

model = dict(backbone=dict(init_cfg=None))
work_dir = 'work_dirs/scratch_demo_ft'
