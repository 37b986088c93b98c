"""Training-loop parts (hooks), registered into MMPretrain's ``HOOKS`` registry."""
from .hooks import ReconstructionVisHook

__all__ = ['ReconstructionVisHook']
