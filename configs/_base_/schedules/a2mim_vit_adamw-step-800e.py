# Pre-training schedule of the ViT rows (official `*_step_ep800.py`), total batch 2048.
#
# AdamW (0.9, 0.999), eps 1e-8, wd 0.05, LR written as base x 2048 / 512, grad clip 5.
# mmcv's `step` policy: linear warm-up over 10 epochs starting at warmup_ratio 2e-6 of the base
# LR (updated per iteration), then x0.1 at epoch 700.
optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(
        type='AdamW',
        lr=1e-4 * 2048 / 512,
        betas=(0.9, 0.999),
        eps=1e-8,
        weight_decay=0.05),
    clip_grad=dict(max_norm=5.0),
    # The official no-decay list is matched with re.search:
    #   (bn|ln|gn)\d*.(weight|bias), norm, bias, mask_token, pos_embed, cls_token, gamma.
    # mmengine custom_keys match by substring (longest key first). In BEiTViT names the norms
    # are `ln1`/`ln2` ('ln'), q/v biases contain 'bias', layer scales are `gamma_1/2`, and
    # 'bias' also matches `layers.N.attn.relative_position_bias_table`, as the official
    # re.search of `bias` does: the relative-position-bias tables get no weight decay.
    paramwise_cfg=dict(
        custom_keys={
            'ln': dict(decay_mult=0.),
            'norm': dict(decay_mult=0.),
            'bias': dict(decay_mult=0.),
            'mask_token': dict(decay_mult=0.),
            'pos_embed': dict(decay_mult=0.),
            'cls_token': dict(decay_mult=0.),
            'gamma': dict(decay_mult=0.),
        }))

param_scheduler = [
    dict(
        type='LinearLR',
        start_factor=2e-6,
        by_epoch=True,
        begin=0,
        end=10,
        convert_to_iter_based=True),
    # mmengine counts MultiStepLR milestones from the scheduler's `begin`, so it starts at 0
    # (it leaves the LR alone until epoch 700).
    dict(
        type='MultiStepLR',
        milestones=[700],
        gamma=0.1,
        by_epoch=True,
        begin=0,
        end=800),
]

train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=800)

# LR above is for 2048 images per optimizer step (`--auto-scale-lr` rescales it).
auto_scale_lr = dict(base_batch_size=2048)
