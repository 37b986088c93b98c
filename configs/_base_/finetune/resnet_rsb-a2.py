# ImageNet-1K fine-tuning of the A2MIM / SimMIM ResNets with "ResNet strikes back" A2, as the
# official `r*_rsb_a2_ft_sz224_8xb256_cos_fp16_ep300.py` (defaults here: ResNet-50).
#
# MMPretrain's own RSB-A2 recipe (stock ResNet with SyncBN, BCE loss, Mixup 0.1 / CutMix 1.0,
# RandAugment m7 std 0.5, RepeatAugSampler, LAMB 5e-3 wd 0.02 without decay on norms and
# biases, 8 x 256 = 2048, test Resize 236 + CenterCrop 224) plus the official differences:
# fp16, 5 warm-up epochs from 1e-5 of the LR, a per-epoch cosine to 1e-6 over all 300 epochs, the
# official no-decay rule (the shortcut BN weight is decayed).
_base_ = 'mmpretrain::resnet/resnet50_8xb256-rsb-a2-300e_in1k.py'

model = dict(
    backbone=dict(
        depth=50,
        drop_path_rate=0.05,
        init_cfg=dict(type='Pretrained', checkpoint='', prefix='backbone.', strict=True)))

# Official no-decay rules (re.search): `(bn|gn)(\d+)?.(weight|bias)` and `bias`. The shortcut
# BN (`downsample.1`) matches neither for its weight, so its weight is decayed (MMPretrain's
# norm_decay_mult=0 would exempt it): the substring keys 'bn' and 'bias' reproduce the rule.
optim_wrapper = dict(
    type='AmpOptimWrapper',
    loss_scale='dynamic',
    paramwise_cfg=dict(
        _delete_=True,
        custom_keys={
            'bn': dict(decay_mult=0.),
            'bias': dict(decay_mult=0.),
        }))

# The official `CosineAnnealing` policy has mmcv's default by_epoch=True: the LR is constant
# within an epoch and follows the cosine over all 300 epochs, warm-up epochs included; the
# linear warm-up from 1e-5 still moves every iteration and multiplies that epoch's value.
param_scheduler = [
    dict(
        type='LinearLR',
        start_factor=1e-5,
        by_epoch=True,
        begin=0,
        end=5,
        convert_to_iter_based=True),
    dict(
        type='CosineAnnealingLR',
        eta_min=1e-6,
        by_epoch=True,
        begin=0,
        end=300,
        convert_to_iter_based=False),
]

train_cfg = dict(by_epoch=True, max_epochs=300, val_interval=1)

# The LR is written for 8 x 256 = 2048 images per optimizer step: TotalBatchCheckHook warns when a
# run is launched with another total and --auto-scale-lr is off.
default_hooks = dict(
    # Long runs (docs/long_runs.md): append dict(type='AutoResumeHook') and, last,
    # dict(type='PreemptionHook') to custom_hooks to save on SIGTERM/SIGUSR1 and resume
    # with the same command (the pre-training configs have both).
    checkpoint=dict(type='AtomicCheckpointHook', interval=1, max_keep_ckpts=2),
    total_batch_check=dict(type='TotalBatchCheckHook', total_batch=2048),
    # NumPy drop-path rates of stock ViTs -> Python floats, plain param groups: no graph
    # break under --cfg-options compile=True (bench/README.md, "torch.compile").
    compile_ready=dict(type='CompileReadyHook'),
    # Off until bench/gpu_check.sh says otherwise: sdpa_attention (BEiT / Swin attention),
    # channels_last (CNNs); fused AdamW is optim_wrapper.optimizer.fused=True.
    fast_paths=dict(type='FastPathsHook'))
