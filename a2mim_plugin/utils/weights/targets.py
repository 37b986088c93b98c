"""Backbone weights in the names of timm and torchvision models (``export_backbone.py --target
timm`` / ``--target torchvision``).

A family is offered only where the stock MMPretrain backbone and the library's model compute
the same function with the same parameters, one tensor each: MMPretrain ``ResNet`` (style
'pytorch') -> timm / torchvision ``resnet<depth>``; ``ConvNeXt`` (V1 and V2) -> timm
``ConvNeXt``; ``VisionTransformer`` -> timm ``VisionTransformer``; ``BEiTViT`` (the parent of
``A2MIMViT``) -> timm ``Beit``; ``SwinTransformer`` -> timm ``SwinTransformer`` (whose patch
merging concatenates the 2 x 2 neighbours in another order: the merging norm and reduction are
permuted to match). Options that one side cannot express
are refused with the option named, never approximated.

:func:`convert_for_target` maps the weights and names the target model; :func:`check_target`
builds that model from the library, loads the weights with ``strict=True`` and compares its
features with the MMPretrain backbone's on a fixed batch, once with the weights themselves and
once with random weights of the same shapes pushed through the same mapping (so that a weight
the trained values make negligible, such as a 1e-6 layer scale, is still checked).
"""
import copy
import re
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import torch
from torch import nn

from .checkpoint_io import WeightToolError
from .state_check import check_state_dict, format_report

FOREIGN_TARGETS = ('timm', 'torchvision')
# Features are compared in float64, relative to the largest feature magnitude.
REL_TOLERANCE = 1e-6
CHECK_BATCH = 2
CNN_CHECK_SIZE = 64
TORCHVISION_RESNETS = (18, 34, 50, 101, 152)
TIMM_RESNETS = (18, 34, 50, 101, 152, 200)
Features = Callable[[nn.Module, torch.Tensor], torch.Tensor]


@dataclass
class TargetModel:
    """A model of another library and the backbone weights in its names.

    Attributes:
        library: 'timm' or 'torchvision'.
        name: the timm model name / the ``torchvision.models`` builder.
        kwargs: keyword arguments of the builder (besides no pretrained weights).
        plain_features: the MMPretrain backbone's features to compare.
        target_features: the same features of the target model.
        rename: the key mapping (reused for the check with random weights).
        note: what a user must know to load the weights.
        state: the weights in the target's names (set by :func:`convert_for_target`).
    """

    library: str
    name: str
    kwargs: Dict[str, Any]
    plain_features: Features
    target_features: Features
    rename: Callable[[Dict[str, torch.Tensor]], Dict[str, torch.Tensor]]
    note: str = ''
    state: Dict[str, torch.Tensor] = field(default_factory=dict)

    def build(self) -> nn.Module:
        """The model, built by the library itself with random weights."""
        if self.library == 'timm':
            import timm
            return timm.create_model(self.name, pretrained=False, **self.kwargs)
        import torchvision
        model = torchvision.models.get_model(self.name, weights=None, **self.kwargs)
        model.fc = nn.Identity()  # the backbone has no classifier
        return model

    def snippet(self) -> str:
        """The Python lines that build the model and load the exported file."""
        args = ''.join(f', {k}={v!r}' for k, v in self.kwargs.items())
        if self.library == 'timm':
            build = f"model = timm.create_model({self.name!r}, pretrained=False{args})"
        else:
            build = (f"model = torchvision.models.{self.name}(weights=None{args}); "
                     'model.fc = torch.nn.Identity()')
        return (f"{build}; model.load_state_dict(torch.load(OUT, weights_only=True)"
                "['state_dict'], strict=True)")


# --------------------------------------------------------------------------------------------
# Renaming by rules
# --------------------------------------------------------------------------------------------
Rule = Tuple[str, Any]  # (full-match regex, replacement string or fn(match, tensor) -> item)


def apply_rules(state: Dict[str, torch.Tensor], rules: Sequence[Rule], what: str
                ) -> Dict[str, torch.Tensor]:
    """Rename every key by the first rule whose regex matches it in full.

    A replacement is a ``re`` template, None (drop the key) or a function of the match and the
    tensor returning ``(new_key, tensor)``. A key no rule matches is an error that lists it.
    """
    out, unmatched = {}, []
    for key, value in state.items():
        for pattern, repl in rules:
            match = re.fullmatch(pattern, key)
            if match is None:
                continue
            if repl is None:
                break
            new_key, new_value = repl(match, value) if callable(repl) else \
                (match.expand(repl), value)
            if new_key in out:
                raise WeightToolError(f'two weights map to {new_key!r} of {what}.')
            out[new_key] = new_value
            break
        else:
            unmatched.append(key)
    if unmatched:
        raise WeightToolError(f'no counterpart in {what} for: {", ".join(unmatched)}.')
    return out


def _refuse(condition: bool, family: str, library: str, option: str) -> None:
    if condition:
        raise WeightToolError(
            f'{family} with {option} has no exact counterpart in {library}, so the weights are '
            f'not exported for {library} (an approximate mapping would load but compute '
            'something else). Export for mmpretrain instead.')


def _check_index_buffers(model: nn.Module, state: Dict[str, torch.Tensor],
                         keys: Sequence[str]) -> None:
    """Relative-position index buffers are not exported (timm computes its own); they must be
    the ones the MMPretrain class computes, or the weights belong to another layout."""
    reference = model.state_dict()
    changed = [k for k in keys if k in state and not torch.equal(state[k], reference[k])]
    if changed:
        raise WeightToolError(f'relative_position_index buffers differ from the ones '
                              f'{type(model).__name__} computes: {", ".join(changed)}.')


def _out_indices(model: nn.Module) -> List[int]:
    value = getattr(model, 'out_indices', ())
    return [int(v) for v in (value if isinstance(value, (list, tuple)) else [value])]


# --------------------------------------------------------------------------------------------
# ResNet -> timm / torchvision resnet<depth>
# --------------------------------------------------------------------------------------------
def _resnet(model: nn.Module, library: str) -> TargetModel:
    family = f'MMPretrain ResNet (depth {model.depth})'
    depths = TIMM_RESNETS if library == 'timm' else TORCHVISION_RESNETS
    _refuse(model.depth not in depths, family, library, f'depth={model.depth}')
    _refuse(model.style != 'pytorch', family, library, f"style={model.style!r} (stride in the "
            "1x1 convolution; timm and torchvision put it in the 3x3 one, style='pytorch')")
    _refuse(model.deep_stem or model.avg_down, family, library,
            'deep_stem / avg_down (ResNetV1c / V1d)')
    _refuse((model.stem_channels, model.base_channels) != (64, 64), family, library,
            f'stem_channels={model.stem_channels}, base_channels={model.base_channels}')
    _refuse(tuple(model.strides) != (1, 2, 2, 2) or tuple(model.dilations) != (1, 1, 1, 1)
            or model.num_stages != 4, family, library,
            f'strides={model.strides}, dilations={model.dilations}, '
            f'num_stages={model.num_stages}')
    bns = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    _refuse(any(type(m) is not nn.BatchNorm2d and not isinstance(m, nn.SyncBatchNorm)
                for m in bns) or any(m.eps != 1e-5 for m in bns), family, library,
            f'norm_cfg={model.norm_cfg} (only BN with eps 1e-5)')

    rules = [(r'(conv1|bn1)\.(.+)', r'\1.\2'),
             (r'(layer[1-4]\.\d+\.(?:conv|bn)[1-3])\.(.+)', r'\1.\2'),
             (r'(layer[1-4]\.\d+\.downsample\.[01])\.(.+)', r'\1.\2')]
    what = f'{library} resnet{model.depth}'

    def rename(state):
        return apply_rules(state, rules, what)

    stages = _out_indices(model)

    def target_features(net: nn.Module, x: torch.Tensor) -> torch.Tensor:
        act = net.act1 if library == 'timm' else net.relu
        x = net.maxpool(act(net.bn1(net.conv1(x))))
        outs = []
        for i in range(4):
            x = getattr(net, f'layer{i + 1}')(x)
            outs.append(x)
        return torch.cat([outs[i].flatten(1) for i in stages], 1)

    def plain_features(net: nn.Module, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([o.flatten(1) for o in net(x)], 1)

    kwargs = dict(num_classes=0, global_pool='') if library == 'timm' else {}
    note = ('' if library == 'timm' else
            'torchvision builds a classifier (fc); replace it with torch.nn.Identity() '
            'before loading (the backbone has none).')
    return TargetModel(library, f'resnet{model.depth}', kwargs, plain_features,
                       target_features, rename, note)


# --------------------------------------------------------------------------------------------
# ConvNeXt (V1, V2) -> timm ConvNeXt
# --------------------------------------------------------------------------------------------
TIMM_CONVNEXT = {  # (depths, dims) -> arch of timm's convnext_<arch> / convnextv2_<arch>
    ((2, 2, 6, 2), (40, 80, 160, 320)): 'atto',
    ((2, 2, 6, 2), (48, 96, 192, 384)): 'femto',
    ((2, 2, 6, 2), (64, 128, 256, 512)): 'pico',
    ((2, 2, 8, 2), (80, 160, 320, 640)): 'nano',
    ((3, 3, 9, 3), (96, 192, 384, 768)): 'tiny',
    ((3, 3, 27, 3), (96, 192, 384, 768)): 'small',
    ((3, 3, 27, 3), (128, 256, 512, 1024)): 'base',
    ((3, 3, 27, 3), (192, 384, 768, 1536)): 'large',
    ((3, 3, 27, 3), (256, 512, 1024, 2048)): 'xlarge',
}


def _convnext(model: nn.Module, library: str) -> TargetModel:
    family = 'MMPretrain ConvNeXt'
    _refuse(library != 'timm', family, library, 'any option (torchvision has no ConvNeXt '
            'with these names; use --target timm)')
    depths = tuple(len(stage) for stage in model.stages)
    dims = tuple(int(c) for c in model.channels)
    blocks = [block for stage in model.stages for block in stage]
    first = blocks[0]
    linear = bool(first.linear_pw_conv)
    keys = [k for k in model.state_dict() if k.startswith('stages.')]
    use_grn = any('.grn.' in k for k in keys)
    has_gamma = any(re.fullmatch(r'stages\.\d\.\d+\.gamma', k) for k in keys)
    _refuse(len(depths) != 4, family, library, f'{len(depths)} stages')
    _refuse(_out_indices(model) != [3], family, library,
            f'out_indices={model.out_indices} (timm has one norm, after the last stage; use '
            'out_indices=(3, ))')
    stem = model.downsample_layers[0][0]
    _refuse(tuple(stem.kernel_size) != (4, 4) or tuple(stem.stride) != (4, 4), family, library,
            f'stem_patch_size={tuple(stem.kernel_size)}')
    _refuse(any(tuple(b.depthwise_conv.kernel_size) != (7, 7) for b in blocks), family, library,
            'a depthwise kernel other than 7')
    ratio = {b.pointwise_conv1.weight.shape[0] / b.pointwise_conv1.weight.shape[1]
             for b in blocks}
    _refuse(ratio != {4.0}, family, library, f'mlp_ratio {sorted(ratio)} (timm: 4)')
    norms = [m for m in model.modules() if isinstance(m, nn.LayerNorm)]
    _refuse(any(m.eps != 1e-6 for m in norms), family, library, 'LayerNorm eps other than 1e-6')
    gap = bool(model.gap_before_final_norm)

    arch = TIMM_CONVNEXT.get((depths, dims))
    v2 = use_grn and not has_gamma
    name = f'convnext{"v2" if v2 else ""}_{arch or "tiny"}'
    # The named model's own layout, so that timm.create_model(name) needs no structural
    # kwargs: timm builds atto..nano with 1x1-conv MLPs (conv_mlp=True), larger ones with
    # Linear layers; MMPretrain's weights are reshaped to whichever the name uses.
    conv_mlp = arch in ('atto', 'femto', 'pico', 'nano')
    kwargs: Dict[str, Any] = {} if arch else dict(depths=depths, dims=dims)
    if not v2 and not has_gamma:
        kwargs['ls_init_value'] = None
    if use_grn and not v2:
        kwargs['use_grn'] = True
    kwargs.update(num_classes=0, global_pool='avg' if gap else '')
    grn_name = {'gamma': 'weight', 'beta': 'bias'}

    def grn(match, value):
        return f'stages.{match[1]}.blocks.{match[2]}.mlp.grn.{grn_name[match[3]]}', value

    def mlp(match, value):
        if match[4] == 'weight':  # (out, in) Linear <-> (out, in, 1, 1) 1x1 conv
            value = value.reshape(*value.shape[:2], *((1, 1) if conv_mlp else ()))
        return f'stages.{match[1]}.blocks.{match[2]}.mlp.fc{match[3]}.{match[4]}', value

    rules = [
        (r'downsample_layers\.0\.([01])\.(.+)', r'stem.\1.\2'),
        (r'downsample_layers\.([1-3])\.([01])\.(.+)', r'stages.\1.downsample.\2.\3'),
        (r'stages\.(\d)\.(\d+)\.depthwise_conv\.(.+)', r'stages.\1.blocks.\2.conv_dw.\3'),
        (r'stages\.(\d)\.(\d+)\.norm\.(.+)', r'stages.\1.blocks.\2.norm.\3'),
        (r'stages\.(\d)\.(\d+)\.pointwise_conv([12])\.(weight|bias)', mlp),
        (r'stages\.(\d)\.(\d+)\.gamma', r'stages.\1.blocks.\2.gamma'),
        (r'stages\.(\d)\.(\d+)\.grn\.(gamma|beta)', grn),
        (r'norm3\.(.+)', r'head.norm.\1'),
    ]

    def rename(state):
        return apply_rules(state, rules, f'timm {name}')

    def plain_features(net, x):
        return net(x)[-1]

    def target_features(net, x):
        return net(x)  # forward_features, then the head's pooling (if any) and norm

    return TargetModel('timm', name, kwargs, plain_features, target_features, rename)


# --------------------------------------------------------------------------------------------
# VisionTransformer -> timm VisionTransformer
# --------------------------------------------------------------------------------------------
TIMM_VITS = {  # (embed_dims, depth, heads) -> timm's vit_<arch>
    (192, 12, 3): 'tiny', (384, 12, 6): 'small', (768, 12, 12): 'base',
    (1024, 24, 16): 'large', (1280, 32, 16): 'huge',
}


def _vit(model: nn.Module, library: str) -> TargetModel:
    """VisionTransformer -> timm ``VisionTransformer``; BEiTViT (A2MIMViT's parent) -> timm
    ``Beit`` (relative position bias tables, ``q_bias`` / ``v_bias``, ``gamma_1/2``)."""
    beit = type(model).__name__ == 'BEiTViT'
    family = f'MMPretrain {type(model).__name__}'
    _refuse(library != 'timm', family, library, 'any option (use --target timm)')
    proj = model.patch_embed.projection
    patch = tuple(proj.kernel_size)
    _refuse(patch[0] != patch[1] or tuple(proj.stride) != patch or proj.padding != (0, 0),
            family, library, f'patch kernel {patch} / stride {tuple(proj.stride)}')
    layers = list(model.layers)
    attn = layers[0].attn
    embed, heads = int(model.embed_dims), int(attn.num_heads)
    ffn = layers[0].ffn.layers[0][0].out_features
    out_type = model.out_type
    final_norm = bool(model.final_norm)
    pre_norm = not isinstance(getattr(model, 'pre_norm', nn.Identity()), nn.Identity)
    _refuse(out_type == 'avg_featmap' and final_norm, family, library,
            "out_type='avg_featmap' together with final_norm=True (two norms; timm has one "
            'before or one after the pooling)')
    _refuse(any(getattr(layer.attn, 'v_shortcut', False) for layer in layers), family,
            library, 'v_shortcut')
    scale = getattr(attn, 'scale', None)
    _refuse(scale is not None and abs(scale - (embed // heads) ** -0.5) > 1e-12, family,
            library, f'qk_scale={scale}')
    norms = [m for m in model.modules() if isinstance(m, nn.LayerNorm)]
    _refuse(any(m.eps != 1e-6 for m in norms), family, library, 'LayerNorm eps other than 1e-6')
    keys = list(model.state_dict())
    img = tuple(model.patch_embed.init_input_size)
    _refuse(img[0] != img[1], family, library, f'img_size={img}')
    avg = out_type == 'avg_featmap'
    common = dict(img_size=img[0], patch_size=patch[0], embed_dim=embed, depth=len(layers),
                  num_heads=heads, mlp_ratio=ffn / embed)
    if beit:
        _refuse(not model.with_cls_token or pre_norm, family, library,
                'with_cls_token=False or pre_norm=True (timm Beit has a class token and no '
                'pre-norm)')
        _refuse(not final_norm and not avg, family, library,
                'final_norm=False (timm Beit always ends with a norm)')
        name = 'beit_large_patch16_224' if (embed, len(layers), heads) == (1024, 24, 16) \
            else 'beit_base_patch16_224'
        kwargs = dict(common, qkv_bias='layers.0.attn.q_bias' in keys,
                      init_values=0.1 if 'layers.0.gamma_1' in keys else None,
                      use_abs_pos_emb='pos_embed' in keys,
                      use_rel_pos_bias='layers.0.attn.relative_position_bias_table' in keys,
                      use_shared_rel_pos_bias='rel_pos_bias.relative_position_bias_table' in
                      keys, num_classes=0, global_pool='avg' if avg else '')
    else:
        layer_scale = hasattr(attn, 'gamma1') and not isinstance(attn.gamma1, nn.Identity)
        arch = TIMM_VITS.get((embed, len(layers), heads))
        name = f'vit_{arch}_patch{patch[0]}_224' if arch else f'vit_base_patch{patch[0]}_224'
        kwargs = dict(common, qkv_bias=attn.qkv.bias is not None,
                      init_values=0.1 if layer_scale else None,
                      class_token=bool(model.with_cls_token), pre_norm=pre_norm,
                      final_norm=final_norm or avg, fc_norm=avg, num_classes=0,
                      global_pool='avg' if avg else '')
    index_keys = [k for k in keys if k.endswith('relative_position_index')]
    rules = [
        # fixed index buffers that timm recomputes (not in its state dict)
        (r'(.+\.)?relative_position_index', None),
        (r'(rel_pos_bias\.relative_position_bias_table)', r'\1'),
        (r'layers\.(\d+)\.attn\.(q_bias|v_bias|relative_position_bias_table)',
         r'blocks.\1.attn.\2'),
        (r'layers\.(\d+)\.(gamma_[12])', r'blocks.\1.\2'),
        (r'(cls_token|pos_embed)', r'\1'),
        (r'patch_embed\.projection\.(.+)', r'patch_embed.proj.\1'),
        (r'pre_norm\.(.+)', r'norm_pre.\1'),
        (r'layers\.(\d+)\.ln([12])\.(.+)', r'blocks.\1.norm\2.\3'),
        (r'layers\.(\d+)\.attn\.(qkv|proj)\.(.+)', r'blocks.\1.attn.\2.\3'),
        (r'layers\.(\d+)\.attn\.gamma1\.weight', r'blocks.\1.ls1.gamma'),
        (r'layers\.(\d+)\.ffn\.gamma2\.weight', r'blocks.\1.ls2.gamma'),
        (r'layers\.(\d+)\.ffn\.layers\.0\.0\.(.+)', r'blocks.\1.mlp.fc1.\2'),
        (r'layers\.(\d+)\.ffn\.layers\.1\.(.+)', r'blocks.\1.mlp.fc2.\2'),
        (r'ln1\.(.+)', r'norm.\1'),
        (r'ln2\.(.+)', r'fc_norm.\1'),
    ]
    last = len(layers) - 1

    def rename(state):
        _check_index_buffers(model, state, index_keys)
        return apply_rules(state, rules, f'timm {name}')

    def plain_features(net, x):
        saved = net.out_indices
        net.out_indices = [last]  # the final features (the only ones the final norm touches)
        try:
            return net(x)[-1]
        finally:
            net.out_indices = saved

    def target_features(net, x):
        tokens = net.forward_features(x)
        if out_type == 'avg_featmap':
            return net.forward_head(tokens)
        if out_type == 'raw':
            return tokens
        if out_type == 'cls_token':
            return tokens[:, 0]
        patches = tokens[:, net.num_prefix_tokens:]
        side = img[0] // patch[0]
        return patches.reshape(x.shape[0], side, side, embed).permute(0, 3, 1, 2)

    return TargetModel('timm', name, kwargs, plain_features, target_features, rename)


# --------------------------------------------------------------------------------------------
# SwinTransformer -> timm SwinTransformer
# --------------------------------------------------------------------------------------------
TIMM_SWINS = {  # (embed_dims, depths) -> timm's swin_<arch>
    (96, (2, 2, 6, 2)): 'tiny', (96, (2, 2, 18, 2)): 'small', (128, (2, 2, 18, 2)): 'base',
    (192, (2, 2, 18, 2)): 'large',
}


def merging_order(channels: int) -> torch.Tensor:
    """Index ``p`` with ``timm[t] = mmpretrain[p[t]]`` for the 4C merged channels.

    MMPretrain's ``PatchMerging`` unfolds 2 x 2 neighbours channel-major (``c * 4 + 2 * dy +
    dx``); timm's concatenates them neighbour-major, x offset outermost (``dx * 2C + dy * C +
    c``).
    """
    dx, dy, c = torch.meshgrid(torch.arange(2), torch.arange(2), torch.arange(channels),
                               indexing='ij')
    return (c * 4 + dy * 2 + dx).reshape(-1)


def _swin(model: nn.Module, library: str) -> TargetModel:
    family = 'MMPretrain SwinTransformer'
    _refuse(library != 'timm', family, library, 'any option (use --target timm)')
    _refuse(bool(model.use_abs_pos_embed), family, library, 'use_abs_pos_embed=True')
    _refuse(getattr(model.patch_embed, 'norm', None) is None, family, library,
            'patch_norm=False')
    depths = tuple(len(stage.blocks) for stage in model.stages)
    _refuse(_out_indices(model) != [len(depths) - 1], family, library,
            f'out_indices={model.out_indices} (timm has one norm, after the last stage; use '
            f'out_indices=({len(depths) - 1}, ))')
    blocks = [block for stage in model.stages for block in stage.blocks]
    msa = blocks[0].attn.w_msa
    windows = {tuple(b.attn.w_msa.window_size) for b in blocks}
    _refuse(len(windows) != 1, family, library, f'window sizes {sorted(windows)}')
    window = next(iter(windows))
    _refuse(window[0] != window[1], family, library, f'window_size={window}')
    _refuse(any(b.attn.pad_small_map for b in blocks), family, library, 'pad_small_map=True')
    proj = model.patch_embed.projection
    patch = tuple(proj.kernel_size)
    _refuse(patch[0] != patch[1] or tuple(proj.stride) != patch, family, library,
            f'patch kernel {patch} / stride {tuple(proj.stride)}')
    img = tuple(model.patch_embed.init_input_size)
    _refuse(img[0] != img[1], family, library, f'img_size={img}')
    _refuse(any(img[0] // patch[0] // 2 ** i % window[0] for i in range(len(depths))
                if img[0] // patch[0] // 2 ** i > window[0]), family, library,
            f'img_size={img[0]} whose stage grids are not multiples of window_size='
            f'{window[0]} (the two libraries pad differently)')
    norms = [m for m in model.modules() if isinstance(m, nn.LayerNorm)]
    _refuse(any(m.eps != 1e-5 for m in norms), family, library, 'LayerNorm eps other than 1e-5')
    ratios = {b.ffn.layers[0][0].out_features / b.ffn.layers[0][0].in_features for b in blocks}
    _refuse(len(ratios) != 1, family, library, f'mlp ratios {sorted(ratios)}')
    heads = tuple(int(stage.blocks[0].attn.w_msa.num_heads) for stage in model.stages)
    scales = {float(b.attn.w_msa.scale) for b in blocks}
    expected = {(dim // h) ** -0.5 for dim, h in zip(model.num_features, heads)}
    _refuse(any(min(abs(s - e) for e in expected) > 1e-12 for s in scales), family, library,
            'qk_scale')
    embed = int(model.embed_dims)
    arch = TIMM_SWINS.get((embed, depths))
    name = f'swin_{arch}_patch{patch[0]}_window{window[0]}_{img[0]}' if arch else \
        'swin_tiny_patch4_window7_224'
    kwargs = dict(img_size=img[0], patch_size=patch[0], window_size=window[0], embed_dim=embed,
                  depths=depths, num_heads=heads, mlp_ratio=next(iter(ratios)),
                  qkv_bias=msa.qkv.bias is not None, num_classes=0, global_pool='')
    dims = [int(stage.blocks[0].norm1.normalized_shape[0]) for stage in model.stages]

    def merge(match, value):
        stage = int(match[1])
        order = merging_order(dims[stage])
        value = value[..., order] if match[2] == 'reduction.weight' else value[order]
        return f'layers.{stage + 1}.downsample.{match[2]}', value

    rules = [
        (r'patch_embed\.projection\.(.+)', r'patch_embed.proj.\1'),
        (r'patch_embed\.norm\.(.+)', r'patch_embed.norm.\1'),
        # a fixed index buffer that timm recomputes (not in its state dict)
        (r'stages\.\d\.blocks\.\d+\.attn\.w_msa\.relative_position_index', None),
        (r'stages\.(\d)\.blocks\.(\d+)\.attn\.w_msa\.(.+)', r'layers.\1.blocks.\2.attn.\3'),
        (r'stages\.(\d)\.blocks\.(\d+)\.(norm[12])\.(.+)', r'layers.\1.blocks.\2.\3.\4'),
        (r'stages\.(\d)\.blocks\.(\d+)\.ffn\.layers\.0\.0\.(.+)',
         r'layers.\1.blocks.\2.mlp.fc1.\3'),
        (r'stages\.(\d)\.blocks\.(\d+)\.ffn\.layers\.1\.(.+)',
         r'layers.\1.blocks.\2.mlp.fc2.\3'),
        (r'stages\.(\d)\.downsample\.(norm\.weight|norm\.bias|reduction\.weight)', merge),
        (rf'norm{len(depths) - 1}\.(.+)', r'norm.\1'),
    ]

    def rename(state):
        _check_index_buffers(model, state, [k for k in state
                                            if k.endswith('relative_position_index')])
        return apply_rules(state, rules, f'timm {name}')

    def plain_features(net, x):
        return net(x)[-1]

    def target_features(net, x):
        return net.forward_features(x).permute(0, 3, 1, 2)  # NHWC -> NCHW

    return TargetModel('timm', name, kwargs, plain_features, target_features, rename)


CONVERTERS: Dict[str, Callable[[nn.Module, str], TargetModel]] = {
    'ResNet': _resnet, 'ConvNeXt': _convnext, 'VisionTransformer': _vit, 'BEiTViT': _vit,
    'SwinTransformer': _swin,
}


def supported_families(library: str) -> List[str]:
    return ['ResNet'] if library == 'torchvision' else sorted(CONVERTERS)


# --------------------------------------------------------------------------------------------
# Conversion and the check
# --------------------------------------------------------------------------------------------
def convert_for_target(plain: nn.Module, state: Dict[str, torch.Tensor], library: str
                       ) -> TargetModel:
    """Map the stock MMPretrain backbone ``plain``'s weights ``state`` to ``library``.

    Raises:
        WeightToolError: the family or one of its options has no exact counterpart there.
    """
    if library not in FOREIGN_TARGETS:
        raise WeightToolError(f'unknown library {library!r}; choose one of {FOREIGN_TARGETS}.')
    kind = type(plain).__name__
    converter = CONVERTERS.get(kind) if type(plain).__module__.startswith('mmpretrain.') \
        else None
    if converter is None or (library == 'torchvision' and kind != 'ResNet'):
        raise WeightToolError(
            f'no exact mapping of {type(plain).__module__}.{kind} to {library}: exported for '
            f'{library} are {", ".join(supported_families(library))} (MMPretrain classes). '
            'Export for mmpretrain instead.')
    target = converter(plain, library)
    target.state = target.rename(state)
    return target


def random_like(state: Dict[str, torch.Tensor], seed: int = 0) -> Dict[str, torch.Tensor]:
    """Random floating weights of the same shapes (spread like the originals; positive running
    variances); integer buffers kept."""
    gen = torch.Generator().manual_seed(seed)
    out = {}
    for key, value in state.items():
        if not value.is_floating_point():
            out[key] = value.clone()
            continue
        spread = float(value.float().std()) if value.numel() > 1 else 0.
        noise = torch.randn(value.shape, generator=gen) * (spread if spread > 0 else 0.1)
        new = value.float() + noise
        out[key] = (new.abs() + 0.1 if key.endswith('running_var') else new).to(value.dtype)
    return out


def check_input_size(plain: nn.Module) -> int:
    """The side of the check batch: the ``img_size`` a ViT / Swin is built for, else
    ``CNN_CHECK_SIZE`` (a CNN takes any size; every weight acts on a 64 px input)."""
    size = getattr(getattr(plain, 'patch_embed', None), 'init_input_size', None)
    return int(size[0]) if isinstance(size, (tuple, list)) else CNN_CHECK_SIZE


def _features(fn: Features, net: nn.Module, x: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return fn(net, x)


def _max_diff(ref: torch.Tensor, other: torch.Tensor) -> Tuple[float, float]:
    """(max abs difference, it relative to the largest magnitude of ``ref``)."""
    diff = float((ref - other).abs().max())
    return diff, diff / max(float(ref.abs().max()), 1e-12)


def check_target(target: TargetModel, plain: nn.Module, state: Dict[str, torch.Tensor],
                 input_size: Optional[int] = None) -> Dict[str, Any]:
    """Build the target model, load the mapped weights strictly, compare features.

    The comparison runs on a fixed ``(2, 3, S, S)`` batch (``torch.randn``, seed 0; S from
    :func:`check_input_size` unless given) in eval
    mode, in float64 (the criterion: max abs difference <= ``REL_TOLERANCE`` x the largest
    feature magnitude), with the weights and with random weights of the same shapes through
    the same mapping; the float32 difference of the weights is reported too.

    Returns:
        The measured differences, the tolerance and the batch.

    Raises:
        WeightToolError: a key does not load strictly, or the features differ.
    """
    input_size = input_size or check_input_size(plain)
    x = torch.randn(CHECK_BATCH, 3, input_size, input_size,
                    generator=torch.Generator().manual_seed(0))
    where = f'{target.library} {target.name}'
    result: Dict[str, Any] = dict(
        batch=f'torch.randn({CHECK_BATCH}, 3, {input_size}, {input_size}), seed 0, eval mode',
        rel_tolerance_float64=REL_TOLERANCE)
    for label, weights in (('weights', state), ('random', random_like(state))):
        mapped = target.state if label == 'weights' else target.rename(weights)
        net = target.build()
        report = check_state_dict(net, mapped)
        if any(report.values()):
            raise WeightToolError(format_report(report, f'{where} built by {target.library}'))
        ref_net = copy.deepcopy(plain)
        ref_net.load_state_dict(weights, strict=True)
        ref_net.eval(), net.eval()
        for dtype in (torch.float64, torch.float32) if label == 'weights' else (torch.float64, ):
            ref = _features(target.plain_features, ref_net.to(dtype), x.to(dtype))
            out = _features(target.target_features, net.to(dtype), x.to(dtype))
            if ref.shape != out.shape:
                raise WeightToolError(f'the features of {where} have shape {tuple(out.shape)}, '
                                      f'the MMPretrain backbone\'s {tuple(ref.shape)}.')
            diff, rel = _max_diff(ref.double(), out.double())
            tag = 'float64' if dtype == torch.float64 else 'float32'
            result[f'{label}_max_abs_diff_{tag}'] = diff
            if dtype == torch.float64:
                result[f'{label}_max_abs_feature'] = float(ref.abs().max())
                if not rel <= REL_TOLERANCE:
                    raise WeightToolError(
                        f'the features of {where} differ from the MMPretrain backbone\'s '
                        f'({label}: max abs difference {diff:.3g} = {rel:.3g} of the largest '
                        f'feature, float64, tolerance {REL_TOLERANCE:g}); nothing written.')
    return result
