# Pre-training schedule of the Swin rows, as the official SimMIM Swin-B schedule (openmixup
# `configs/selfsup/simmim/imagenet/swin_base_sz192_8xb128_accu2_cos_ep100.py`, which the A2MIM
# Swin model bases pair with): 8 GPUs x 128 x 2 accumulation = 2048, fp32.
#
# AdamW (0.9, 0.999), eps 1e-8, wd 0.05, LR 2e-4 x 2048 / 512, grad clip 5; no weight decay on
# norm / bias / mask_token / absolute_pos_embed / relative_position_bias_table (mmengine
# custom_keys match by substring as the official re.search does). mmcv's `CosineAnnealing`
# with by_epoch=False: one per-iteration cosine from the first to the last iteration to
# min_lr 1e-5 x 2048 / 512, multiplied during the first 10 epochs by a linear warm-up from
# warmup_ratio 1e-6 x 2048 / 512 (a ratio of the LR in mmcv, as written officially).
optim_wrapper = dict(
    type='OptimWrapper',
    accumulative_counts=2,
    optimizer=dict(
        type='AdamW',
        lr=2e-4 * 2048 / 512,
        betas=(0.9, 0.999),
        eps=1e-8,
        weight_decay=0.05),
    clip_grad=dict(max_norm=5.0),
    paramwise_cfg=dict(
        custom_keys={
            'norm': dict(decay_mult=0.),
            'bias': dict(decay_mult=0.),
            'mask_token': dict(decay_mult=0.),
            'absolute_pos_embed': dict(decay_mult=0.),
            'relative_position_bias_table': dict(decay_mult=0.),
        }))

param_scheduler = [
    dict(
        type='LinearLR',
        start_factor=1e-6 * 2048 / 512,
        by_epoch=True,
        begin=0,
        end=10,
        convert_to_iter_based=True),
    dict(
        type='CosineAnnealingLR',
        eta_min=1e-5 * 2048 / 512,
        by_epoch=True,
        begin=0,
        end=100,
        convert_to_iter_based=True),
]

train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=100)

# mmengine's --auto-scale-lr ignores accumulative_counts: 8 x 128 stands for 2048 per step.
auto_scale_lr = dict(base_batch_size=1024)
