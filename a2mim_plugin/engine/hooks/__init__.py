from .reconstruction_vis_hook import ReconstructionVisHook

__all__ = ['ReconstructionVisHook']
