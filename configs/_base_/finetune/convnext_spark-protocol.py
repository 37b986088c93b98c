# ImageNet-1K fine-tuning of the A2MIM / SimMIM ConvNeXts as the official
# `convnext_{s,b}_spark_ft_sz224_8xb256_cos_fp16_ep300.py` (defaults here: ConvNeXt-S). The
# README calls it "RSB A2", but the configs are the SparK/ConvNeXt AdamW recipe:
#
# MMPretrain's stock ConvNeXt recipe (gap + the pre-trained final norm, LabelSmooth 0.1,
# Mixup 0.8 / CutMix 1.0, RandAugment m9 + RandomErasing 0.25, AdamW wd 0.05, test Resize 256 +
# CenterCrop 224) with the official numbers: AdamW 4e-3 for 8 x 256 x 2 accumulation = 4096,
# drop path 0.4 (S) / 0.5 (B), the official no-decay rule, 5 warm-up epochs from 1e-5 over a
# per-iteration cosine to 1e-6 spanning all 300 epochs, fp16, no layer decay, and the official
# EMA (0.9999, one update per optimizer step, 20-epoch momentum warm-up).
_base_ = 'mmpretrain::convnext/convnext-small_32xb128_in1k.py'

model = dict(
    backbone=dict(
        arch='small',
        drop_path_rate=0.4,
        init_cfg=dict(type='Pretrained', checkpoint='', prefix='backbone.', strict=True)),
    head=dict(in_channels=768))

train_dataloader = dict(batch_size=256)
val_dataloader = dict(batch_size=256)
test_dataloader = val_dataloader

# Official no-decay rules (re.search): `(bn|ln|gn)(\d+)?.(weight|bias)`, `norm`, `bias`, `gamma`.
# In ConvNeXt's names `norm` covers the blocks' LayerNorms and `norm3`, `gamma` the layer
# scales; the LayerNorms inside `downsample_layers.*` match none of them, so their weights are
# decayed (MMPretrain's norm/flat_decay_mult=0 would exempt them).
optim_wrapper = dict(
    type='AmpOptimWrapper',
    loss_scale='dynamic',
    accumulative_counts=2,
    optimizer=dict(lr=4e-3),
    paramwise_cfg=dict(
        _delete_=True,
        custom_keys={
            'norm': dict(decay_mult=0.),
            'bias': dict(decay_mult=0.),
            'gamma': dict(decay_mult=0.),
        }))

# mmcv's `CosineAnnealing` with by_epoch=False, as the official config: a per-iteration cosine
# from the first to the last iteration (warm-up included), multiplied during the first 5 epochs
# by the linear warm-up from warmup_ratio 1e-5.
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
        convert_to_iter_based=True),
]

train_cfg = dict(by_epoch=True, max_epochs=300, val_interval=1)

# The LR is written for 8 x 256 x 2 = 4096 images per optimizer step: TotalBatchCheckHook warns
# when a run is launched with another total and --auto-scale-lr is off.
default_hooks = dict(
    # Long runs (docs/long_runs.md): append dict(type='AutoResumeHook') and, last,
    # dict(type='PreemptionHook') to custom_hooks to save on SIGTERM/SIGUSR1 and resume
    # with the same command (the pre-training configs have both).
    checkpoint=dict(type='AtomicCheckpointHook', interval=1, max_keep_ckpts=2),
    total_batch_check=dict(type='TotalBatchCheckHook', total_batch=4096),
    # NumPy drop-path rates of stock ViTs -> Python floats, plain param groups: no graph
    # break under --cfg-options compile=True (bench/README.md, "torch.compile").
    compile_ready=dict(type='CompileReadyHook'),
    # Off until bench/gpu_check.sh says otherwise: sdpa_attention (BEiT / Swin attention),
    # channels_last (CNNs); fused AdamW is optim_wrapper.optimizer.fused=True.
    fast_paths=dict(type='FastPathsHook'))

# Official EMA: momentum 0.9999 (mmengine: 1 - 0.9999), one update per optimizer step
# (update_interval=2 with the 2 accumulation steps), the keep coefficient warmed up linearly
# from 0.9 x 0.9999 over the first 20 epochs (warmup_iters=20 x 626 dataloader iterations).
custom_hooks = [
    dict(
        type='OptimStepEMAHook',
        momentum=1e-4,
        warmup_epochs=20,
        warmup_ratio=0.9,
        priority='ABOVE_NORMAL')
]

# mmengine's --auto-scale-lr ignores accumulative_counts: 8 x 256 stands for 4096 per step.
auto_scale_lr = dict(base_batch_size=2048)
