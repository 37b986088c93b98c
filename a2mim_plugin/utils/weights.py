"""Backbone weight handling for the export and conversion tools.

``tools/export_backbone.py`` turns a pre-training (runner) checkpoint of this plugin into a
backbone-only checkpoint; ``tools/convert_official.py`` turns a released official A2MIM
(OpenMixup) checkpoint into the same layout. Both write::

    {'state_dict': {'backbone.<name>': tensor, ...}, 'meta': {... provenance ...}}

The ``backbone.`` prefix is kept on purpose: a downstream MMPretrain / MMDetection /
MMSegmentation config then loads a full pre-training checkpoint and an exported one with the
same ``init_cfg=dict(type='Pretrained', checkpoint=..., prefix='backbone.')``.

Every written state dict is checked against the plain backbone it is meant for: it is loaded
into a freshly built model and any missing, unexpected or mis-shaped key is an error.
"""
import copy
import hashlib
import io
import os
import re
import sys
import time
from typing import Any, Callable, Dict, Iterable, List, Optional, Sequence, Tuple

import torch
from torch import nn

from .atomic_io import atomic_write_bytes

PREFIX = 'backbone.'
MASK_KEYS = ('mask_token', 'mask_gamma')
# Arguments of the A2MIM backbones that only concern masking; the plain parents lack them.
MASK_KWARGS = ('mask_layer', 'mask_token', 'replace', 'mask_init', 'token_init')

# A2MIM backbone -> (plain MMPretrain backbone, defaults the A2MIM class sets with setdefault).
# Kept in sync with a2mim_plugin/models/backbones (tests/test_weight_tools.py checks that the
# plain model has exactly the A2MIM backbone's keys minus the mask keys).
PLAIN_FAMILIES = {
    'A2MIMViT': ('BEiTViT', dict(use_abs_pos_emb=True, use_rel_pos_bias=True,
                                 layer_scale_init_value=0.1, final_norm=True,
                                 out_type='featmap')),
    'A2MIMPlainViT': ('VisionTransformer', dict(final_norm=True, out_type='featmap')),
    'A2MIMResNet': ('ResNet', {}),
    'A2MIMConvNeXt': ('ConvNeXt', dict(gap_before_final_norm=False)),
}
PLAIN_TYPES = ('BEiTViT', 'VisionTransformer', 'ResNet', 'ConvNeXt')
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
# Official ViT archs (openmixup VisionTransformer.arch_zoo): embed, layers, heads, FFN.
OFFICIAL_VIT_ARCHS = {
    'small': (768, 8, 8, 2304),
    'base': (768, 12, 12, 3072),
    'large': (1024, 24, 16, 4096),
    'deit-tiny': (192, 12, 3, 768),
    'deit-small': (384, 12, 6, 1536),
    'deit-base': (768, 12, 12, 3072),
    'mocov3-small': (384, 12, 12, 1536),
}
for _short, _long in (('s', 'small'), ('b', 'base'), ('l', 'large'), ('deit-t', 'deit-tiny'),
                      ('deit-s', 'deit-small'), ('deit-b', 'deit-base'),
                      ('mocov3-s', 'mocov3-small')):
    OFFICIAL_VIT_ARCHS[_short] = OFFICIAL_VIT_ARCHS[_long]


class WeightToolError(RuntimeError):
    """A user-facing failure of the weight tools (printed to stderr, exit code 1)."""


# --------------------------------------------------------------------------------------------
# Reading and writing
# --------------------------------------------------------------------------------------------
def load_checkpoint_weights_only(path: str) -> dict:
    """``torch.load(path, map_location='cpu', weights_only=True)``.

    Importing ``a2mim_plugin`` first allow-lists the few classes of mmengine runner checkpoints
    (``HistoryBuffer``, numpy arrays). Anything else is refused: the error says which global
    was refused instead of falling back to an unsafe load.
    """
    import a2mim_plugin  # noqa: F401  (registers the weights-only allow-list)

    if not os.path.isfile(path):
        raise WeightToolError(f'checkpoint not found: {path}')
    try:
        ckpt = torch.load(path, map_location='cpu', weights_only=True)
    except Exception as err:  # torch raises UnpicklingError / RuntimeError variants
        raise WeightToolError(
            f'cannot read {path} with torch.load(weights_only=True): {err}\n'
            'The checkpoint holds a Python object outside the allow-list. This tool does not '
            'fall back to weights_only=False; re-save only the tensors (the state_dict) of a '
            'checkpoint you trust and run the tool on that file.') from err
    if not isinstance(ckpt, dict):
        raise WeightToolError(f'{path} does not hold a dict (got {type(ckpt).__name__}).')
    return ckpt


def file_sha256(path: str, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, 'rb') as f:
        for block in iter(lambda: f.read(chunk), b''):
            digest.update(block)
    return digest.hexdigest()


def save_atomic(obj: dict, path: str) -> None:
    """``torch.save`` ``obj`` so that ``path`` never holds a partial file."""
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    atomic_write_bytes(buffer.getvalue(), path)


def to_builtin(obj):
    """Plain Python containers only (``ConfigDict`` -> dict), so that the saved meta loads
    with ``weights_only=True`` anywhere, without the plugin's allow-list."""
    if isinstance(obj, dict):
        return {str(k): to_builtin(v) for k, v in obj.items()}
    if isinstance(obj, tuple):
        return tuple(to_builtin(v) for v in obj)
    if isinstance(obj, list):
        return [to_builtin(v) for v in obj]
    if obj is None or type(obj) in (bool, int, float, str):
        return obj
    if isinstance(obj, bool):  # numpy / torch subclasses -> the exact builtin type
        return bool(obj)
    if isinstance(obj, int):
        return int(obj)
    if isinstance(obj, float):
        return float(obj)
    return str(obj).encode('utf-8').decode('utf-8')  # exact str (e.g. from TorchVersion)


def raw_state_dict(ckpt: dict) -> Dict[str, torch.Tensor]:
    """The tensor dict of a checkpoint (its ``state_dict`` / ``model`` entry, or itself)."""
    for key in ('state_dict', 'model'):
        if isinstance(ckpt.get(key), dict):
            ckpt = ckpt[key]
            break
    state = {}
    for name, value in ckpt.items():
        if not isinstance(value, torch.Tensor):
            raise WeightToolError(f'entry {name!r} of the state dict is a '
                                  f'{type(value).__name__}, not a tensor.')
        state[name[len('module.'):] if name.startswith('module.') else name] = value
    if not state:
        raise WeightToolError('the checkpoint holds an empty state dict.')
    return state


def backbone_state_dict(state: Dict[str, torch.Tensor]) -> Tuple[Dict[str, torch.Tensor], str]:
    """Backbone tensors without the ``backbone.`` prefix, and the form of the input.

    A full checkpoint (some keys start with ``backbone.``) keeps only those; neck, head and
    data-preprocessor entries are dropped. Otherwise the dict is taken as backbone-only (as
    OpenMixup's ``extract_backbone_weights.py`` writes it).
    """
    if any(k.startswith(PREFIX) for k in state):
        return {k[len(PREFIX):]: v for k, v in state.items() if k.startswith(PREFIX)}, 'full'
    return dict(state), 'backbone-only'


def with_prefix(state: Dict[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
    return {PREFIX + k: v.detach().clone().contiguous() for k, v in state.items()}


# --------------------------------------------------------------------------------------------
# Building the plain backbones
# --------------------------------------------------------------------------------------------
def _strip_scope(type_name: str) -> str:
    return type_name.split('.')[-1]


def _resnet_class(registry_name: str, depth: int):
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
    """The plain backbone matching an A2MIM backbone config, for ``target``.

    The ``type`` carries the scope a downstream config of ``target`` needs
    (``mmpretrain.BEiTViT`` inside MMDetection, plain ``ResNet`` = that library's own ResNet).
    """
    if target not in TARGETS:
        raise WeightToolError(f'unknown target {target!r}; choose one of {TARGETS}.')
    cfg = to_builtin(dict(backbone_cfg))
    type_name = _strip_scope(str(cfg.pop('type')))
    if type_name in PLAIN_FAMILIES:
        plain_type, defaults = PLAIN_FAMILIES[type_name]
        for key, value in defaults.items():
            cfg.setdefault(key, value)
        for key in MASK_KWARGS:
            cfg.pop(key, None)
    elif type_name in PLAIN_TYPES:
        plain_type = type_name
    else:
        raise WeightToolError(
            f'backbone type {type_name!r} is not supported; expected one of '
            f'{sorted(PLAIN_FAMILIES) + list(PLAIN_TYPES)}.')
    cfg.pop('init_cfg', None)
    cfg.pop('pretrained', None)
    if plain_type == 'ResNet' and target != 'mmpretrain':
        cfg = {k: v for k, v in cfg.items() if k in _RESNET_STRUCTURE_KWARGS}
        return dict(type='ResNet', **cfg)
    scope = '' if target == 'mmpretrain' else 'mmpretrain.'
    return dict(type=scope + plain_type, **cfg)


def build_plain_backbone(plain_cfg: dict, target: str = 'mmpretrain') -> nn.Module:
    """Instantiate a config from :func:`plain_backbone_cfg` (class looked up directly in the
    target library's registry, independent of the current default scope)."""
    cfg = copy.deepcopy(plain_cfg)
    type_name = _strip_scope(cfg.pop('type'))
    if type_name == 'ResNet':
        lib = 'mmpretrain' if target == 'mmpretrain' else target
        cls = _resnet_class(lib, cfg.get('depth', 50))
    else:
        from mmpretrain.registry import MODELS
        cls = MODELS.get(type_name)
        if cls is None:
            raise WeightToolError(f'backbone type {type_name!r} is not registered in '
                                  'MMPretrain.')
    try:
        return cls(**cfg)
    except Exception as err:
        raise WeightToolError(f'cannot build {cls.__module__}.{cls.__name__}({cfg}): '
                              f'{err}') from err


def build_a2mim_backbone(backbone_cfg: dict) -> nn.Module:
    """Build a backbone config (A2MIM or plain) with the MMPretrain registry."""
    import a2mim_plugin  # noqa: F401
    from mmpretrain.registry import MODELS

    cfg = to_builtin(dict(backbone_cfg))
    type_name = _strip_scope(cfg.pop('type'))
    cfg.pop('init_cfg', None)
    cls = MODELS.get(type_name)
    if cls is None:
        raise WeightToolError(f'backbone type {type_name!r} is not registered in MMPretrain.')
    try:
        return cls(**cfg)
    except Exception as err:
        raise WeightToolError(f'cannot build {type_name}({cfg}): {err}') from err


# --------------------------------------------------------------------------------------------
# Checking
# --------------------------------------------------------------------------------------------
def check_state_dict(model: nn.Module, state: Dict[str, torch.Tensor],
                     ignore: Iterable[str] = ()) -> Dict[str, List[str]]:
    """Load ``state`` (no prefix) into ``model`` and list every disagreement.

    Returns a dict with ``missing`` (model keys absent from ``state``), ``unexpected`` (keys
    of ``state`` the model lacks, except ``ignore``), ``shape`` (``key: ckpt vs model``) and
    ``value`` (keys whose tensor differs from the model's deterministic buffer, or that did
    not land unchanged). All empty means an exact match.
    """
    ignore = set(ignore)
    expected = model.state_dict()
    report = dict(missing=sorted(k for k in expected if k not in state),
                  unexpected=sorted(k for k in state if k not in expected and k not in ignore),
                  shape=[], value=[])
    for key, value in state.items():
        if key in expected and tuple(value.shape) != tuple(expected[key].shape):
            report['shape'].append(f'{key}: checkpoint {tuple(value.shape)} vs model '
                                   f'{tuple(expected[key].shape)}')
        elif key.endswith('relative_position_index') and key in expected and \
                not torch.equal(value.to(expected[key].dtype), expected[key]):
            # deterministic index buffer: a different one means a different layout
            report['value'].append(f'{key}: differs from the index the model computes')
    if any(report.values()):
        return report
    loadable = {k: v for k, v in state.items() if k in expected}
    model.load_state_dict(copy.copy(loadable), strict=True)
    loaded = model.state_dict()
    for key, value in loadable.items():
        if not torch.equal(loaded[key], value.to(loaded[key].dtype)):
            report['value'].append(f'{key}: changed while loading (load hook?)')
    return report


def format_report(report: Dict[str, List[str]], what: str) -> str:
    titles = dict(missing='missing keys (in the model, not in the checkpoint)',
                  unexpected='unexpected keys (in the checkpoint, not in the model)',
                  shape='shape mismatches', value='value mismatches')
    lines = [f'The weights do not match {what}:']
    for name, title in titles.items():
        if report.get(name):
            lines.append(f'  {title} [{len(report[name])}]:')
            lines.extend(f'    {key}' for key in report[name])
    return '\n'.join(lines)


def describe(model: nn.Module) -> str:
    return f'{type(model).__module__}.{type(model).__name__}'


def verify_or_raise(model: nn.Module, state: Dict[str, torch.Tensor], ignore: Iterable[str] = (),
                    what: Optional[str] = None) -> None:
    report = check_state_dict(model, state, ignore)
    if any(report.values()):
        raise WeightToolError(format_report(report, what or describe(model)))


def split_mask_keys(state: Dict[str, torch.Tensor]
                    ) -> Tuple[Dict[str, torch.Tensor], Dict[str, torch.Tensor]]:
    plain = {k: v for k, v in state.items() if k not in MASK_KEYS}
    mask = {k: v for k, v in state.items() if k in MASK_KEYS}
    return plain, mask


def provenance(tool: str, source: str, extra: Optional[dict] = None) -> dict:
    import a2mim_plugin

    meta = dict(tool=tool, a2mim_plugin_version=getattr(a2mim_plugin, '__version__', 'unknown'),
                torch_version=torch.__version__, source=os.path.abspath(source),
                source_sha256=file_sha256(source),
                created=time.strftime('%Y-%m-%dT%H:%M:%S%z'), key_prefix=PREFIX,
                load_with="init_cfg=dict(type='Pretrained', checkpoint=<this file>, "
                          "prefix='backbone.')")
    meta.update(extra or {})
    return to_builtin(meta)


# --------------------------------------------------------------------------------------------
# Official (OpenMixup) layouts -> plain backbone configs
# --------------------------------------------------------------------------------------------
def _block_counts(state: Dict[str, torch.Tensor], pattern: str) -> Dict[int, int]:
    """``{stage: number of blocks}`` from keys matching ``pattern`` with groups (stage, block)."""
    blocks: Dict[int, set] = {}
    regex = re.compile(pattern)
    for key in state:
        match = regex.match(key)
        if match:
            blocks.setdefault(int(match.group(1)), set()).add(int(match.group(2)))
    return {stage: max(ids) + 1 for stage, ids in sorted(blocks.items())}


def _need(state: Dict[str, torch.Tensor], key: str, arch: str) -> torch.Tensor:
    if key not in state:
        raise WeightToolError(f'not an official {arch} backbone: key {key!r} is missing '
                              f'(first keys: {sorted(state)[:8]}).')
    return state[key]


def infer_official_vit(state: Dict[str, torch.Tensor], arch_name: Optional[str] = None,
                       num_heads: Optional[int] = None, img_size: Optional[int] = None,
                       layout: str = 'beit') -> Tuple[dict, Dict[str, torch.Tensor]]:
    """Plain config and renamed state dict for an official ViT (``SimMIMViT`` /
    ``VisionTransformer`` of openmixup, mmcv-1.x key names).

    ``layout='beit'`` targets MMPretrain ``BEiTViT`` (the layout of this plugin's
    ``A2MIMViT``); every official name is kept. ``layout='plain'`` targets MMPretrain
    ``VisionTransformer`` (``A2MIMPlainViT``): layer scale ``gamma_1``/``gamma_2`` become
    ``attn.gamma1.weight``/``ffn.gamma2.weight``. Only official ViTs without ``use_window``
    (plain qkv bias, no relative position bias) fit that layout.
    """
    proj = _need(state, 'patch_embed.projection.weight', 'ViT')
    embed_dims, in_channels, patch_h, patch_w = proj.shape
    if patch_h != patch_w:
        raise WeightToolError(f'non-square patch embedding {tuple(proj.shape)} is not supported.')
    num_layers = max(int(k.split('.')[1]) for k in state if k.startswith('layers.')) + 1
    ffn = _need(state, 'layers.0.ffn.layers.0.0.weight', 'ViT').shape[0]
    has_rpe = 'layers.0.attn.relative_position_bias_table' in state
    has_qv = 'layers.0.attn.q_bias' in state
    has_qkv_bias = 'layers.0.attn.qkv.bias' in state
    has_ls = 'layers.0.gamma_1' in state
    if has_rpe:
        rpe_heads = state['layers.0.attn.relative_position_bias_table'].shape[1]
        if num_heads is not None and num_heads != rpe_heads:
            raise WeightToolError(f'--num-heads {num_heads} disagrees with the checkpoint\'s '
                                  f'relative position bias ({rpe_heads} heads).')
        num_heads = rpe_heads
    if arch_name is not None:
        if arch_name not in OFFICIAL_VIT_ARCHS:
            raise WeightToolError(f'unknown official ViT arch {arch_name!r}; choose one of '
                                  f'{sorted(OFFICIAL_VIT_ARCHS)}.')
        zoo = OFFICIAL_VIT_ARCHS[arch_name]
        found = (embed_dims, num_layers, num_heads if num_heads else zoo[2], ffn)
        if found != zoo:
            raise WeightToolError(f'--arch-name {arch_name} is (embed, layers, heads, ffn) = '
                                  f'{zoo}, the checkpoint has {found}.')
        num_heads = zoo[2]
    if num_heads is None:
        raise WeightToolError('this ViT has no relative position bias, so the number of heads '
                              'cannot be read from the weights: pass --num-heads or '
                              '--arch-name.')
    if 'pos_embed' in state:
        grid = int(round((state['pos_embed'].shape[1] - 1) ** 0.5))
        size_from_weights = grid * patch_h
    elif has_rpe:
        rows = state['layers.0.attn.relative_position_bias_table'].shape[0] - 3
        size_from_weights = (int(round(rows ** 0.5)) + 1) // 2 * patch_h
    else:
        size_from_weights = None
    if img_size is not None and size_from_weights is not None and img_size != size_from_weights:
        raise WeightToolError(f'--img-size {img_size} disagrees with the checkpoint '
                              f'({size_from_weights}).')
    img_size = img_size or size_from_weights or 224
    arch = dict(embed_dims=int(embed_dims), num_layers=num_layers, num_heads=int(num_heads),
                feedforward_channels=int(ffn))
    common = dict(arch=arch, img_size=img_size, patch_size=int(patch_h),
                  in_channels=int(in_channels), final_norm='ln1.weight' in state,
                  out_type='featmap')
    if layout == 'beit':
        bias = 'qv_bias' if has_qv else bool(has_qkv_bias)
        cfg = dict(type='BEiTViT', **common, bias=bias, use_abs_pos_emb='pos_embed' in state,
                   use_rel_pos_bias=has_rpe, use_shared_rel_pos_bias=False,
                   layer_scale_init_value=0.1 if has_ls else 0.)
        return cfg, dict(state)
    if layout != 'plain':
        raise WeightToolError(f'unknown ViT layout {layout!r}; choose beit or plain.')
    if has_rpe or has_qv:
        raise WeightToolError('--vit-layout plain cannot hold the per-layer relative position '
                              'bias and q/v biases of this checkpoint (official use_window='
                              'True); use --vit-layout beit (BEiTViT).')
    if 'pos_embed' not in state:
        raise WeightToolError('--vit-layout plain needs an absolute position embedding.')
    cfg = dict(type='VisionTransformer', **common, qkv_bias=has_qkv_bias,
               layer_scale_init_value=0.1 if has_ls else 0.)
    renamed = {}
    for key, value in state.items():
        match = re.match(r'layers\.(\d+)\.gamma_([12])$', key)
        if match is None:
            renamed[key] = value
        elif match.group(2) == '1':
            renamed[f'layers.{match.group(1)}.attn.gamma1.weight'] = value
        else:
            renamed[f'layers.{match.group(1)}.ffn.gamma2.weight'] = value
    return cfg, renamed


def infer_official_resnet(state: Dict[str, torch.Tensor],
                          depth: Optional[int] = None) -> Tuple[dict, Dict[str, torch.Tensor]]:
    """Plain config for an official ResNet (openmixup ``resnet_mmcls`` / ``MIMResNet``,
    whose names equal MMPretrain's ``ResNet``)."""
    blocks = _block_counts(state, r'layer(\d+)\.(\d+)\.')
    if not blocks:
        raise WeightToolError('not an official ResNet backbone: no layer<i>.<j>. keys '
                              f'(first keys: {sorted(state)[:8]}).')
    kind = 'bottleneck' if 'layer1.0.conv3.weight' in state else 'basic'
    counts = tuple(blocks.get(i, 0) for i in range(1, 5))
    found = [d for d, spec in RESNET_DEPTHS.items() if spec == (kind, counts)]
    if not found:
        raise WeightToolError(f'unknown ResNet layout: {kind} blocks {counts}.')
    if depth is not None and depth != found[0]:
        raise WeightToolError(f'--depth {depth} disagrees with the checkpoint (ResNet-'
                              f'{found[0]}: {kind} blocks {counts}).')
    deep_stem = 'stem.0.conv.weight' in state
    stem = state['stem.0.conv.weight' if deep_stem else 'conv1.weight']
    cfg = dict(type='ResNet', depth=found[0], in_channels=int(stem.shape[1]),
               out_indices=(3, ), style='pytorch')
    stem_channels = int(state['stem.2.conv.weight' if deep_stem else 'conv1.weight'].shape[0])
    base_channels = int(_need(state, 'layer1.0.conv1.weight', 'ResNet').shape[0])
    if stem_channels != 64:
        cfg['stem_channels'] = stem_channels
    if base_channels != 64:
        cfg['base_channels'] = base_channels
    if deep_stem:
        cfg['deep_stem'] = True
    if 'layer2.0.downsample.2.weight' in state:  # AvgPool, conv, norm
        cfg['avg_down'] = True
    return cfg, dict(state)


def infer_official_convnext(state: Dict[str, torch.Tensor], arch_name: Optional[str] = None
                            ) -> Tuple[dict, Dict[str, torch.Tensor]]:
    """Plain config for an official ConvNeXt (openmixup ``ConvNeXt`` / ``MIMConvNeXt``, whose
    names equal MMPretrain's ``ConvNeXt``)."""
    from mmpretrain.models.backbones import ConvNeXt

    stem = _need(state, 'downsample_layers.0.0.weight', 'ConvNeXt')
    depths_by_stage = _block_counts(state, r'stages\.(\d+)\.(\d+)\.')
    depths = [depths_by_stage.get(i, 0) for i in range(len(depths_by_stage))]
    channels = [int(state[f'stages.{i}.0.depthwise_conv.weight'].shape[0])
                for i in range(len(depths))]
    arch: object = dict(depths=depths, channels=channels)
    for name, setting in ConvNeXt.arch_settings.items():
        if list(setting['depths']) == depths and list(setting['channels']) == channels:
            arch = name
            break
    if arch_name is not None and arch != arch_name:
        raise WeightToolError(f'--arch-name {arch_name} disagrees with the checkpoint '
                              f'(depths {depths}, channels {channels}).')
    out_indices = tuple(sorted(int(k[4]) for k in state if re.match(r'norm\d\.weight$', k)))
    cfg = dict(type='ConvNeXt', arch=arch, in_channels=int(stem.shape[1]),
               stem_patch_size=int(stem.shape[-1]),
               out_indices=out_indices or (len(depths) - 1, ),
               layer_scale_init_value=1e-6 if 'stages.0.0.gamma' in state else 0.,
               linear_pw_conv=state['stages.0.0.pointwise_conv1.weight'].dim() == 2,
               gap_before_final_norm=False)
    return cfg, dict(state)


def reshape_mask_params(mask: Dict[str, torch.Tensor], channels_first: bool
                        ) -> Dict[str, torch.Tensor]:
    """Official ``mask_token``/``mask_gamma`` in this plugin's shapes: ViT token (1, 1, C) and
    gamma (C,); CNN token and gamma (1, C, 1, 1)."""
    out = {}
    for key, value in mask.items():
        c = value.numel()
        if key == 'mask_token':
            shape: Sequence[int] = (1, c, 1, 1) if channels_first else (1, 1, c)
        else:
            shape = (1, c, 1, 1) if channels_first else (c, )
        out[key] = value.reshape(shape)
    return out


_A2MIM_OF_PLAIN = dict(BEiTViT='A2MIMViT', VisionTransformer='A2MIMPlainViT',
                       ResNet='A2MIMResNet', ConvNeXt='A2MIMConvNeXt')


def a2mim_cfg_for(plain_cfg: dict, mask: Dict[str, torch.Tensor],
                  mask_layer: Optional[int] = None) -> dict:
    """The A2MIM backbone config whose state dict is ``plain_cfg``'s plus ``mask``.

    ``mask_layer`` defaults to the official choice (0 for ViTs, 3 for CNNs); for CNNs the
    token's channel count must match the stage at ``mask_layer``, and without an explicit
    ``mask_layer`` the deepest stage with that many channels is taken.
    """
    cfg = copy.deepcopy(plain_cfg)
    plain_type = _strip_scope(cfg.pop('type'))
    cfg = dict(type=_A2MIM_OF_PLAIN[plain_type], **cfg)
    cfg['mask_token'] = 'learnable' if 'mask_token' in mask else None
    cfg['mask_init'] = 1e-6 if 'mask_gamma' in mask else 0.
    if plain_type in ('BEiTViT', 'VisionTransformer'):
        cfg['mask_layer'] = 0 if mask_layer is None else mask_layer
        return cfg
    token = mask.get('mask_token', mask.get('mask_gamma'))
    if token is None or mask_layer is not None:
        cfg['mask_layer'] = 3 if mask_layer is None else mask_layer
        return cfg
    probe = build_plain_backbone(plain_cfg)
    if plain_type == 'ResNet':
        stage_channels = [probe.stem_channels] + [
            getattr(probe, name)[-1].out_channels for name in probe.res_layers[:-1]]
    else:
        stage_channels = list(probe.channels)
    matches = [i for i, c in enumerate(stage_channels) if c == token.numel()]
    if not matches:
        raise WeightToolError(f'mask_token has {token.numel()} channels, but the injection '
                              f'points of this {plain_type} have {stage_channels}.')
    cfg['mask_layer'] = matches[-1]
    return cfg


def run_tool(tool: str, action: Callable[[Any], dict], args: Any, source_text: str) -> int:
    """Run a weight tool's ``action(args)``; print its summary, or its error and return 1.

    Args:
        tool: the tool's name, prefixed to its messages.
        action: the tool's work; returns the ``meta`` it wrote.
        args: the parsed command line (``src``, ``dst``).
        source_text: how the summary names the input (e.g. 'backbone of').
    """
    try:
        meta = action(args)
    except WeightToolError as err:
        print(f'{tool}: error: {err}', file=sys.stderr)
        return 1
    print(f'Wrote {args.dst}: {source_text} {args.src} checked against '
          f'{meta["checked_against"]} (mask params {meta["mask_params"]}).\n'
          f'Downstream: backbone={meta["backbone_cfg"]} with '
          "init_cfg=dict(type='Pretrained', checkpoint=..., prefix='backbone.', strict=True)")
    return 0
