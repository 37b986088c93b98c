from .atomic_checkpoint_hook import AtomicCheckpointHook
from .reconstruction_vis_hook import ReconstructionVisHook
from .rng_state_hook import RNGStateHook

__all__ = ['AtomicCheckpointHook', 'ReconstructionVisHook', 'RNGStateHook']
