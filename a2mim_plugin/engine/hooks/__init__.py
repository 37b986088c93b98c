from .atomic_checkpoint_hook import AtomicCheckpointHook
from .auto_resume_hook import AutoResumeHook
from .compile_ready_hook import CompileReadyHook
from .fast_paths_hook import FastPathsHook
from .knn_eval_hook import KNNDataError, KNNEvalHook
from .mask_pipeline_check_hook import MaskPipelineCheckHook
from .non_finite_loss_hook import NonFiniteLossError, NonFiniteLossHook
from .optim_step_ema_hook import OptimStepEMAHook
from .preemption_hook import PREEMPTED_EXIT_CODE, Preempted, PreemptionHook
from .reconstruction_vis_hook import ReconstructionVisHook
from .rng_state_hook import RNGStateHook
from .total_batch_check_hook import TotalBatchCheckHook

__all__ = ['AtomicCheckpointHook', 'AutoResumeHook', 'PREEMPTED_EXIT_CODE', 'Preempted',
           'PreemptionHook', 'KNNDataError', 'KNNEvalHook', 'MaskPipelineCheckHook',
           'NonFiniteLossError', 'NonFiniteLossHook', 'OptimStepEMAHook', 'CompileReadyHook',
           'FastPathsHook', 'ReconstructionVisHook', 'RNGStateHook', 'TotalBatchCheckHook']
