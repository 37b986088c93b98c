from .atomic_checkpoint_hook import AtomicCheckpointHook
from .mask_pipeline_check_hook import MaskPipelineCheckHook
from .non_finite_loss_hook import NonFiniteLossError, NonFiniteLossHook
from .optim_step_ema_hook import OptimStepEMAHook
from .plain_param_groups_hook import PlainParamGroupsHook
from .reconstruction_vis_hook import ReconstructionVisHook
from .rng_state_hook import RNGStateHook
from .total_batch_check_hook import TotalBatchCheckHook

__all__ = ['AtomicCheckpointHook', 'MaskPipelineCheckHook', 'NonFiniteLossError',
           'NonFiniteLossHook', 'OptimStepEMAHook', 'PlainParamGroupsHook',
           'ReconstructionVisHook', 'RNGStateHook', 'TotalBatchCheckHook']
