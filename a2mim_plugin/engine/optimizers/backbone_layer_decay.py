"""Layer-wise learning-rate decay driven by the backbone's ``get_layer_depth``.

MMDetection's ``LearningRateDecayOptimizerConstructor`` recognises backbones by class name and
only accepts ConvNeXt; MMSegmentation's picks its rule from the class name (``ConvNeXt``,
``BEiT``, ``MAE``) and rejects e.g. a ResNet. MMPretrain's
``LearningRateDecayOptimWrapperConstructor`` asks the *whole model* for ``get_layer_depth``,
which a detector or segmentor does not have. This constructor is MMPretrain's, asking the
model's backbone instead: ``model.backbone.get_layer_depth(name, prefix='backbone.')``, which
MMPretrain's ViT / BEiT ViT / ConvNeXt / ResNet / Swin implement. Parameters outside the
backbone (neck, heads) get the deepest depth, i.e. the base learning rate.

A parameter at depth ``d`` of ``n`` gets ``lr = base_lr * layer_decay_rate ** (n - 1 - d)``;
for a ViT with ``L`` blocks: patch embedding / cls token / position embedding
``base_lr * rate ** (L + 1)``, block ``i`` (0-based) ``base_lr * rate ** (L - i)``, neck and
heads ``base_lr``.

``paramwise_cfg`` takes the keys of MMPretrain's constructor: ``layer_decay_rate`` (required
here), and for the weight decay ``norm_decay_mult``, ``bias_decay_mult``, ``flat_decay_mult``
(1-D parameters) and ``custom_keys`` (substring of the parameter name -> ``decay_mult``; a
matching key overrides the other rules). For example, the MMSegmentation BEiT rule "no decay
for 1-D parameters and biases" is ``flat_decay_mult=0., bias_decay_mult=0.``, and extra
no-decay names are ``custom_keys={'pos_embed': dict(decay_mult=0.)}``.

The class is not registered when this module is imported: ``import a2mim_plugin`` registers it
into MMDetection's and MMSegmentation's ``OPTIM_WRAPPER_CONSTRUCTORS`` where those packages
import (see :func:`a2mim_plugin.registration.register_layer_decay_constructor`), so their
configs only need ``custom_imports=dict(imports=['a2mim_plugin'], ...)``.
"""
from functools import partial
from typing import Callable, List, Optional

from mmpretrain.engine.optimizers import LearningRateDecayOptimWrapperConstructor
from torch import nn


class BackboneLayerDecayOptimWrapperConstructor(LearningRateDecayOptimWrapperConstructor):
    """MMPretrain's layer-decay constructor for models whose *backbone* knows the depths.

    Use it in an MMDetection / MMSegmentation config as::

        optim_wrapper = dict(
            constructor='BackboneLayerDecayOptimWrapperConstructor',
            optimizer=dict(type='AdamW', lr=3e-4, weight_decay=0.05),
            paramwise_cfg=dict(layer_decay_rate=0.75, flat_decay_mult=0., bias_decay_mult=0.))
    """

    def __init__(self, optim_wrapper_cfg: dict, paramwise_cfg: Optional[dict] = None) -> None:
        super().__init__(optim_wrapper_cfg, paramwise_cfg)
        if 'layer_decay_rate' not in self.paramwise_cfg:
            raise ValueError(f'{type(self).__name__} needs paramwise_cfg.layer_decay_rate.')

    def add_params(self, params: List[dict], module: nn.Module, prefix: str = '',
                   get_layer_depth: Optional[Callable] = None, **kwargs) -> None:
        """Add the parameters of ``module`` with the backbone's layer depths (see module doc)."""
        if prefix == '' and get_layer_depth is None:
            get_layer_depth = self._backbone_layer_depth(module)
        super().add_params(params, module, prefix=prefix, get_layer_depth=get_layer_depth,
                           **kwargs)

    @staticmethod
    def _backbone_layer_depth(model: nn.Module) -> Callable:
        backbone = getattr(model, 'backbone', None)
        if backbone is None or not hasattr(backbone, 'get_layer_depth'):
            raise NotImplementedError(
                'BackboneLayerDecayOptimWrapperConstructor needs model.backbone.'
                f'get_layer_depth(); {type(model).__name__}.backbone is '
                f'{type(backbone).__name__}. MMPretrain backbones (type=\'mmpretrain.'
                "BEiTViT' / 'mmpretrain.ConvNeXt' / 'mmpretrain.ResNet') implement it.")
        return partial(backbone.get_layer_depth, prefix='backbone.')
