"""Registrations into registries other than MMPretrain's model and hook registries, and the
repair of an MMPretrain dependency that cannot work on current SciPy."""
import importlib
import importlib.util
from typing import Iterator

from mmengine.registry import Registry

from .models.utils import register_strict_pretrained

DOWNSTREAM_CODEBASES = ('mmdet', 'mmseg')


def _downstream_registries(name: str) -> Iterator[Registry]:
    """``<codebase>.registry.<name>`` of each downstream codebase that imports cleanly."""
    for package in DOWNSTREAM_CODEBASES:
        if importlib.util.find_spec(package) is None:
            continue
        try:
            registry = getattr(importlib.import_module(f'{package}.registry'), name)
        except Exception:  # e.g. an mmcv version the package refuses: its configs fail anyway
            continue
        yield registry


def register_pretrained_init() -> None:
    """Put the strict-capable ``'Pretrained'`` init into each installed codebase's registry.

    MMPretrain always; MMDetection and MMSegmentation when they import cleanly (their configs
    run under their own default scope, whose registry is searched first).
    """
    from mmpretrain.registry import WEIGHT_INITIALIZERS
    register_strict_pretrained(WEIGHT_INITIALIZERS)
    for registry in _downstream_registries('WEIGHT_INITIALIZERS'):
        register_strict_pretrained(registry)


def register_layer_decay_constructor() -> None:
    """Put ``BackboneLayerDecayOptimWrapperConstructor`` into MMDetection's and
    MMSegmentation's ``OPTIM_WRAPPER_CONSTRUCTORS`` when they import cleanly, so their configs
    name it without a scope and only import ``a2mim_plugin``."""
    from .engine.optimizers import BackboneLayerDecayOptimWrapperConstructor
    for registry in _downstream_registries('OPTIM_WRAPPER_CONSTRUCTORS'):
        registry.register_module(module=BackboneLayerDecayOptimWrapperConstructor, force=True)


def repair_beit_rel_pos_resize() -> bool:
    """Make MMPretrain's ``BEiTViT`` / ``SwinTransformer`` load checkpoints of another input
    size on SciPy >= 1.14.

    MMPretrain 1.2.0 resizes relative position bias tables with ``scipy.interpolate.interp2d``,
    which SciPy 1.14 removed. Only when ``interp2d`` is unusable, this installs the same BEiT
    resize computed with ``RectBivariateSpline`` (:mod:`a2mim_plugin.utils.rel_pos_resize`);
    with an older SciPy it changes nothing.

    Returns:
        Whether the replacement was installed.
    """
    from .utils.rel_pos_resize import patch_beit_rel_pos_resize
    return patch_beit_rel_pos_resize()
