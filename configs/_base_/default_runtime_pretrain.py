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
# CompileReadyHook (before mmengine compiles) makes NumPy drop-path rates of stock ViTs Python
# floats (no graph break per block) and the optimizer's param groups plain dicts (mmengine
# builds ConfigDicts from paramwise_cfg, which dynamo cannot trace in the optimizer step); no
# value changes. See bench/README.md, "torch.compile".
_base_ = 'mmpretrain::_base_/default_runtime.py'

default_hooks = dict(
    logger=dict(type='LoggerHook', interval=100),
    checkpoint=dict(type='AtomicCheckpointHook', interval=10, max_keep_ckpts=3),
    total_batch_check=dict(type='TotalBatchCheckHook', total_batch=2048),
    compile_ready=dict(type='CompileReadyHook'),
    # Off until bench/gpu_check.sh says otherwise: sdpa_attention (BEiT / Swin attention),
    # channels_last (CNNs); fused AdamW is optim_wrapper.optimizer.fused=True.
    fast_paths=dict(type='FastPathsHook'),
    # k-NN top-1/top-5 of the plain backbone (docs/evaluation.md): bank = 100 seeded images per
    # class of ImageNet train, queries = ImageNet val (50k), every 10 epochs and after the last;
    # both splits are checked when the run starts.
    # Off: --cfg-options default_hooks.knn_eval.enabled=False
    knn_eval=dict(
        type='KNNEvalHook',
        bank=dict(type='ImageNet', split='train'),  # data_root: the train dataloader's
        query=dict(type='ImageNet', split='val'),
        bank_per_class=100,
        interval=10,
        ks=(20, 200),
        crop_size=224,
        batch_size=128,
        num_workers=8))
custom_hooks = [
    dict(type='RNGStateHook'),
    dict(type='NonFiniteLossHook'),
    dict(type='MaskPipelineCheckHook'),
    # Long runs (docs/long_runs.md): the same command continues from work_dir/last_checkpoint;
    # SIGTERM/SIGUSR1 save at the end of the optimizer step and exit 75 (tools/slurm_pretrain.sh
    # requeues), and a checkpoint every 30 minutes bounds what a hard kill loses. Keep the
    # PreemptionHook last.
    dict(type='AutoResumeHook'),
    dict(type='PreemptionHook', signals=['SIGTERM', 'SIGUSR1'], interval_minutes=30),
]

randomness = dict(seed=0, diff_rank_seed=True)
