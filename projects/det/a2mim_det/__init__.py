"""MMDetection helper for A2MIM ViT transfer: the simple feature pyramid neck.

The ViT config imports this package with ``custom_imports=dict(imports=['a2mim_plugin',
'projects.det.a2mim_det'], allow_failed_imports=False)``; the repository root must be on
``PYTHONPATH`` (``PYTHONPATH=$PWD mim train mmdet ...``). It registers into MMDetection's
``MODELS``, so the config names the type without a scope. Without MMDetection the package
imports to nothing (``HAS_MMDET`` is False).

The layer-wise LR decay constructor and the SciPy >= 1.14 repair of BEiTViT's relative position
bias resize come from ``a2mim_plugin`` itself (``import a2mim_plugin`` registers / applies
them), so the other det configs need only ``a2mim_plugin``.
"""
try:
    import mmdet  # noqa: F401
except ImportError:  # MMDetection is an optional dependency of the plugin
    HAS_MMDET = False
    __all__ = ['HAS_MMDET']
else:
    HAS_MMDET = True
    from .simple_feature_pyramid import SimpleFeaturePyramid

    __all__ = ['HAS_MMDET', 'SimpleFeaturePyramid']
