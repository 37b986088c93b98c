# Runtime of the pre-training configs: MMPretrain's default runtime (scope 'mmpretrain', hooks,
# visualizer), checkpoints every 10 epochs (the last epoch is always saved), fixed seed.
# Interrupted runs lose nothing: checkpoints are written atomically (AtomicCheckpointHook) and
# carry the RNG states of every rank (RNGStateHook), so `--resume` continues the exact run.
# Every official pre-training row trains 2048 images per optimizer step (GPUs x batch per GPU x
# accumulation) and its LR is written for that total: TotalBatchCheckHook warns at the start of
# a run launched with another total (a GPU count the config was not written for) unless
# --auto-scale-lr is on. (It sits here because mmengine forbids a top-level key in two bases.)
# NonFiniteLossHook stops a diverging run (NaN/inf loss term or gradient norm) before the
# optimizer step and before any checkpoint is written, naming the last good checkpoint;
# MaskPipelineCheckHook checks that the pipeline makes the mask for the crop it produces.
# torch.compile: `--cfg-options compile=True` (or compile.backend=... / compile.mode=...) makes
# mmengine compile model.train_step; the A2MIM loss path (fill, mask upsampling, token hook,
# decoder, head, Fourier loss) traces without graph breaks (tests/test_compile.py).
# PlainParamGroupsHook makes the optimizer's param groups plain dicts (mmengine builds
# ConfigDicts from paramwise_cfg, which dynamo cannot trace in the optimizer step); the values
# are unchanged. See bench/README.md, "torch.compile".
_base_ = 'mmpretrain::_base_/default_runtime.py'

default_hooks = dict(
    logger=dict(type='LoggerHook', interval=100),
    checkpoint=dict(type='AtomicCheckpointHook', interval=10, max_keep_ckpts=3),
    total_batch_check=dict(type='TotalBatchCheckHook', total_batch=2048))
custom_hooks = [
    dict(type='RNGStateHook'),
    dict(type='NonFiniteLossHook'),
    dict(type='MaskPipelineCheckHook'),
    dict(type='PlainParamGroupsHook'),
]

randomness = dict(seed=0, diff_rank_seed=True)
