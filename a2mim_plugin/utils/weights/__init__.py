"""Backbone weights for the export and conversion tools.

``tools/export_backbone.py`` turns a pre-training (runner) checkpoint of this plugin into a
backbone-only checkpoint; ``tools/convert_official.py`` turns a released official A2MIM
(OpenMixup) checkpoint into the same layout. Every written state dict is checked against the
stock backbone it is meant for: loaded into a freshly built model, any missing, unexpected or
mis-shaped key is an error.
"""
from .checkpoint_io import (MASK_KEYS, PREFIX, WeightToolError, backbone_state_dict,
                            file_sha256, load_checkpoint_weights_only, provenance,
                            raw_state_dict, save_atomic, split_mask_keys, to_builtin,
                            with_prefix)
from .official_layout import (OFFICIAL_VIT_ARCHS, a2mim_cfg_for, infer_official_convnext,
                              infer_official_resnet, infer_official_vit, reshape_mask_params)
from .plain_backbone import (RESNET_DEPTHS, TARGETS, build_plain_backbone,
                             build_pretrain_backbone, plain_backbone_cfg, preset_of_plain)
from .state_check import check_state_dict, describe, format_report, verify_or_raise
from .targets import (FOREIGN_TARGETS, TargetModel, check_target, convert_for_target,
                      supported_families)
from .tool_runner import run_tool

__all__ = [
    'FOREIGN_TARGETS', 'MASK_KEYS', 'OFFICIAL_VIT_ARCHS', 'PREFIX', 'RESNET_DEPTHS', 'TARGETS',
    'TargetModel', 'WeightToolError', 'check_target', 'convert_for_target', 'supported_families',
    'a2mim_cfg_for', 'backbone_state_dict', 'build_plain_backbone', 'build_pretrain_backbone',
    'check_state_dict', 'describe', 'file_sha256', 'format_report', 'infer_official_convnext',
    'infer_official_resnet', 'infer_official_vit', 'load_checkpoint_weights_only', 'provenance',
    'raw_state_dict', 'reshape_mask_params', 'run_tool', 'save_atomic', 'split_mask_keys',
    'to_builtin', 'verify_or_raise', 'with_prefix'
]
