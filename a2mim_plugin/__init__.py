"""a2mim-plugin: A2MIM (Li et al., ICML 2023) for MMPretrain.

Importing the package (directly or through ``custom_imports=dict(imports=['a2mim_plugin'])``)
registers the algorithm, backbones, decoder, head, losses and hooks into MMPretrain's
registries; registers a ``'Pretrained'`` init with an opt-in ``strict=True`` check into the
MMPretrain / MMDetection / MMSegmentation weight-init registries; registers
``BackboneLayerDecayOptimWrapperConstructor`` into the MMDetection / MMSegmentation optimizer
constructor registries; allow-lists for ``torch.load(weights_only=True)`` the few classes that
mmengine runner checkpoints hold; and, only where SciPy no longer has ``interp2d`` (>= 1.14),
replaces MMPretrain's relative-position-bias resize with the same BEiT scheme computed without
it (``a2mim_plugin.utils.rel_pos_resize``).
"""
from . import datasets, engine, models  # noqa: F401  (registration side effects)
from .registration import (register_layer_decay_constructor, register_pretrained_init,
                           repair_beit_rel_pos_resize)
from .utils.checkpoint_safety import allow_mmengine_checkpoint_globals

__version__ = '0.1.0'

allow_mmengine_checkpoint_globals()
register_pretrained_init()
register_layer_decay_constructor()
repair_beit_rel_pos_resize()
