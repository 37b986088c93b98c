"""The stock backbone a pre-training backbone's weights load into, and building either.

A pre-training config names either a preset (``A2MIMResNet``, ... whose ``plain_config`` gives
the stock MMPretrain parent) or a stock backbone with ``model.mask_token``; in both cases the
plain model is a stock backbone and the pre-training weights are its weights plus
``mask_token`` / ``mask_gamma``.
"""
import copy
from typing import Dict, Optional

import torch
from torch import nn

from .checkpoint_io import WeightToolError, to_builtin

TARGETS = ('mmpretrain', 'mmdet', 'mmseg')
# Structural ResNet arguments that MMDetection's and MMSegmentation's ResNet also accept.
_RESNET_STRUCTURE_KWARGS = ('depth', 'in_channels', 'stem_channels', 'base_channels',
                            'num_stages', 'strides', 'dilations', 'out_indices', 'style',
                            'deep_stem', 'avg_down', 'conv_cfg', 'norm_cfg')
# ResNet depths of the official code (openmixup resnet_mmcls + MIMResNet); 200 is missing
# from MMPretrain / MMDetection / MMSegmentation.
RESNET_DEPTHS = {
    18: ('basic', (2, 2, 2, 2)),
    34: ('basic', (3, 4, 6, 3)),
    50: ('bottleneck', (3, 4, 6, 3)),
    101: ('bottleneck', (3, 4, 23, 3)),
    152: ('bottleneck', (3, 8, 36, 3)),
    200: ('bottleneck', (3, 24, 36, 3)),
}


def strip_scope(type_name: str) -> str:
    return str(type_name).split('.')[-1]


def _mmpretrain_class(type_name: str) -> type:
    import a2mim_plugin  # noqa: F401  (the presets)
    from mmpretrain.registry import MODELS

    cls = MODELS.get(type_name)
    if cls is None:
        raise WeightToolError(f'backbone type {type_name!r} is not registered in MMPretrain.')
    return cls


def preset_of_plain(plain_type: str) -> str:
    """The preset whose stock parent is ``plain_type`` (for official checkpoints)."""
    from ...models.backbones import A2MIMConvNeXt, A2MIMPlainViT, A2MIMResNet, A2MIMViT

    for preset in (A2MIMViT, A2MIMPlainViT, A2MIMResNet, A2MIMConvNeXt):
        if preset.plain_type == plain_type:
            return preset.__name__
    raise WeightToolError(f'no A2MIM preset extends {plain_type!r}.')


def _resnet_class(registry_name: str, depth: int) -> type:
    """The ResNet class of a library; depth 200 (official only) gets a local subclass."""
    if registry_name == 'mmdet':
        import mmdet.models  # noqa: F401
        from mmdet.registry import MODELS
    elif registry_name == 'mmseg':
        import mmseg.models  # noqa: F401
        from mmseg.registry import MODELS
    else:
        from mmpretrain.registry import MODELS
    cls = MODELS.get('ResNet')
    if depth in cls.arch_settings or depth not in RESNET_DEPTHS:
        return cls
    block = cls.arch_settings[50][0]  # the Bottleneck of that library
    return type(f'{cls.__name__}{depth}', (cls, ),
                {'arch_settings': {**cls.arch_settings, depth: (block, RESNET_DEPTHS[depth][1])}})


def plain_backbone_cfg(backbone_cfg: dict, target: str = 'mmpretrain') -> dict:
    """The stock backbone config matching a pre-training backbone config, for ``target``.

    A preset becomes its stock parent with the preset's defaults; a stock backbone stays as it
    is. The ``type`` carries the scope a downstream config of ``target`` needs
    (``mmpretrain.BEiTViT`` inside MMDetection; a plain ``ResNet`` is that library's own).
    """
    if target not in TARGETS:
        raise WeightToolError(f'unknown target {target!r}; choose one of {TARGETS}.')
    cfg = to_builtin(dict(backbone_cfg))
    type_name = strip_scope(cfg.get('type'))
    cls = _mmpretrain_class(type_name)
    cfg = cls.plain_config(cfg) if hasattr(cls, 'plain_config') else dict(cfg, type=type_name)
    cfg.pop('init_cfg', None)
    cfg.pop('pretrained', None)
    plain_type = cfg.pop('type')
    if plain_type == 'ResNet' and target != 'mmpretrain':
        cfg = {k: v for k, v in cfg.items() if k in _RESNET_STRUCTURE_KWARGS}
        return dict(type='ResNet', **cfg)
    scope = '' if target == 'mmpretrain' else 'mmpretrain.'
    return dict(type=scope + plain_type, **cfg)


def build_plain_backbone(plain_cfg: dict, target: str = 'mmpretrain') -> nn.Module:
    """Instantiate a config from :func:`plain_backbone_cfg` (class looked up directly in the
    target library's registry, independent of the current default scope)."""
    cfg = copy.deepcopy(plain_cfg)
    type_name = strip_scope(cfg.pop('type'))
    if type_name == 'ResNet':
        cls = _resnet_class('mmpretrain' if target == 'mmpretrain' else target,
                            cfg.get('depth', 50))
    else:
        cls = _mmpretrain_class(type_name)
    try:
        return cls(**cfg)
    except Exception as err:
        raise WeightToolError(f'cannot build {cls.__module__}.{cls.__name__}({cfg}): '
                              f'{err}') from err


def build_pretrain_backbone(backbone_cfg: dict, mask_spec: Optional[dict] = None,
                            mask_state: Optional[Dict[str, torch.Tensor]] = None) -> nn.Module:
    """The pre-training backbone: a preset, or a stock backbone with its ``model.mask_token``
    injection attached in the shape of the stored ``mask_token`` (no dry run)."""
    from ...models.mask_injection import MaskTokenInjection

    cfg = to_builtin(dict(backbone_cfg))
    cfg.pop('init_cfg', None)
    type_name = strip_scope(cfg.pop('type'))
    cls = _mmpretrain_class(type_name)
    try:
        model = cls(**cfg)
        if mask_spec is not None and (mask_state or {}).get('mask_token') is not None:
            MaskTokenInjection.from_state(model, to_builtin(dict(mask_spec)),
                                          mask_state['mask_token'])
    except Exception as err:
        raise WeightToolError(f'cannot build {type_name}({cfg}) with mask_token={mask_spec}: '
                              f'{err}') from err
    return model
