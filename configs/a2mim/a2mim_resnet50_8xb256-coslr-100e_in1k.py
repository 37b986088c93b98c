# A2MIM ResNet-50, 100 epochs on ImageNet-1K, 8 GPUs x 256 = 2048, fp32 (RSB-A3 78.8).
# Official: openmixup configs/selfsup/a2mim/imagenet/r50_l3_sz224_init_8xb256_cos_ep100.py
# Fine-tune: configs/a2mim/benchmarks/resnet50_a2mim-100e-pre_4xb512-amp-rsb-a3-100e_in1k.py (78.8)
# Same as the 300-epoch row except the length and the optimizer groups: this config also lists
# mask_gamma (wd 0, lr x0.1).
_base_ = [
    '../_base_/models/a2mim_resnet50.py',
    '../_base_/datasets/imagenet_a2mim_cnn-p16.py',
    '../_base_/schedules/a2mim_resnet_adamw-coslr-300e.py',
    '../_base_/default_runtime_pretrain.py',
]
custom_imports = dict(imports=['a2mim_plugin'], allow_failed_imports=False)

optim_wrapper = dict(
    paramwise_cfg=dict(
        custom_keys={'mask_gamma': dict(decay_mult=0., lr_mult=0.1)}))

param_scheduler = [
    dict(
        type='LinearLR',
        start_factor=1e-6,
        by_epoch=True,
        begin=0,
        end=10,
        convert_to_iter_based=True),
    dict(
        type='CosineAnnealingLR',
        eta_min=1e-5,
        by_epoch=True,
        begin=10,
        end=100,
        convert_to_iter_based=True),
]
train_cfg = dict(max_epochs=100)
