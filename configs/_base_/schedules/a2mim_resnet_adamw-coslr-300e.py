# Pre-training schedule of the ResNet rows (official `r*_l3_sz224_init_8xb256_cos_ep300.py`),
# total batch 2048, fp32, no gradient clipping.
#
# AdamW (0.9, 0.999), eps 1e-8, wd 0.05, LR 3e-4 x 2048 / 512. StepFixCosineAnnealing: linear
# warm-up over 10 epochs from 0 (LinearLR needs a positive start; 1e-6 of the base LR is the
# ~0 stand-in), then a per-iteration cosine to an absolute 1e-5 over the remaining epochs.
optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(
        type='AdamW',
        lr=3e-4 * 2048 / 512,
        betas=(0.9, 0.999),
        eps=1e-8,
        weight_decay=0.05),
    # Official groups (re.search): (bn|ln|gn)\d*.(weight|bias) and bias -> wd 0; mask_token ->
    # wd 0, lr x0.1. Quirks kept on purpose:
    # * `mask_gamma` is not listed in the 300-epoch configs: it is decayed and trained at full
    #   LR (the 100-epoch R-50 row lists it);
    # * `downsample.1.weight` (the shortcut BN) does not match the bn regex and is decayed
    #   (its bias still matches 'bias'). The substring key 'bn' reproduces exactly this.
    paramwise_cfg=dict(
        custom_keys={
            'bn': dict(decay_mult=0.),
            'bias': dict(decay_mult=0.),
            'mask_token': dict(decay_mult=0., lr_mult=0.1),
        }))

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
        end=300,
        convert_to_iter_based=True),
]

train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=300)

auto_scale_lr = dict(base_batch_size=2048)
