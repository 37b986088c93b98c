"""Optimizer-wrapper constructors for the downstream (MMDetection / MMSegmentation) configs.

Importing this package registers nothing; ``a2mim_plugin.registration`` puts the constructor
into each installed codebase's ``OPTIM_WRAPPER_CONSTRUCTORS``.
"""
from .backbone_layer_decay import BackboneLayerDecayOptimWrapperConstructor

__all__ = ['BackboneLayerDecayOptimWrapperConstructor']
