"""Registrations into registries other than MMPretrain's model and hook registries."""
import importlib
import importlib.util

from .models.utils import register_strict_pretrained


def register_pretrained_init() -> None:
    """Put the strict-capable ``'Pretrained'`` init into each installed codebase's registry.

    MMPretrain always; MMDetection and MMSegmentation when they import cleanly (their configs
    run under their own default scope, whose registry is searched first).
    """
    from mmpretrain.registry import WEIGHT_INITIALIZERS
    register_strict_pretrained(WEIGHT_INITIALIZERS)
    for package in ('mmdet', 'mmseg'):
        if importlib.util.find_spec(package) is None:
            continue
        try:
            registry = importlib.import_module(f'{package}.registry').WEIGHT_INITIALIZERS
        except Exception:  # e.g. an mmcv version the package refuses: its configs fail anyway
            continue
        register_strict_pretrained(registry)
