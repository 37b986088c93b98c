# Runtime of the pre-training configs: MMPretrain's default runtime (scope 'mmpretrain', hooks,
# visualizer), checkpoints every 10 epochs (the last epoch is always saved), fixed seed.
# Interrupted runs lose nothing: checkpoints are written atomically (AtomicCheckpointHook) and
# carry the RNG states of every rank (RNGStateHook), so `--resume` continues the exact run.
_base_ = 'mmpretrain::_base_/default_runtime.py'

default_hooks = dict(
    logger=dict(type='LoggerHook', interval=100),
    checkpoint=dict(type='AtomicCheckpointHook', interval=10, max_keep_ckpts=3))
custom_hooks = [dict(type='RNGStateHook')]

randomness = dict(seed=0, diff_rank_seed=True)
