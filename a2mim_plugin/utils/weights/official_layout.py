"""Official A2MIM (OpenMixup) backbone checkpoints: their layout inferred from the weights.

The official parameter names (read from the OpenMixup code) are MMPretrain's for ResNet and
ConvNeXt and for the BEiT-style ViT; a plain ViT needs the layer-scale names renamed.
"""
import copy
import re
from typing import Dict, Optional, Sequence, Tuple

import torch

from .checkpoint_io import WeightToolError
from .plain_backbone import RESNET_DEPTHS, build_plain_backbone, preset_of_plain, strip_scope

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



def a2mim_cfg_for(plain_cfg: dict, mask: Dict[str, torch.Tensor],
                  mask_layer: Optional[int] = None) -> dict:
    """The A2MIM backbone config whose state dict is ``plain_cfg``'s plus ``mask``.

    ``mask_layer`` defaults to the official choice (0 for ViTs, 3 for CNNs); for CNNs the
    token's channel count must match the stage at ``mask_layer``, and without an explicit
    ``mask_layer`` the deepest stage with that many channels is taken.
    """
    cfg = copy.deepcopy(plain_cfg)
    plain_type = strip_scope(cfg.pop('type'))
    cfg = dict(type=preset_of_plain(plain_type), **cfg)
    cfg['mask_token'] = 'learnable' if 'mask_token' in mask else None
    cfg['mask_init'] = 1e-6 if 'mask_gamma' in mask else 0.
    if plain_type in ('BEiTViT', 'VisionTransformer'):
        cfg['mask_layer'] = 0 if mask_layer is None else mask_layer
        return cfg
    token = mask.get('mask_token', mask.get('mask_gamma'))
    if token is None:
        cfg['mask_layer'] = 3 if mask_layer is None else mask_layer
        return cfg
    probe = build_plain_backbone(plain_cfg)
    if plain_type == 'ResNet':
        stage_channels = [probe.stem_channels] + [
            getattr(probe, name)[-1].out_channels for name in probe.res_layers[:-1]]
    else:
        stage_channels = list(probe.channels)
    matches = [i for i, c in enumerate(stage_channels) if c == token.numel()]
    if mask_layer is not None:  # out of range: the preset's own error names the valid range
        if 0 <= mask_layer < len(stage_channels) and stage_channels[mask_layer] != token.numel():
            fix = (f'use --mask-layer {matches[-1]} or leave it out' if matches else
                   'no injection point has that width')
            raise WeightToolError(
                f'--mask-layer {mask_layer}: this {plain_type} has '
                f'{stage_channels[mask_layer]} channels there (points: {stage_channels}), but '
                f'the mask_token has {token.numel()}; {fix}.')
        cfg['mask_layer'] = mask_layer
        return cfg
    if not matches:
        raise WeightToolError(f'mask_token has {token.numel()} channels, but the injection '
                              f'points of this {plain_type} have {stage_channels}.')
    cfg['mask_layer'] = matches[-1]
    return cfg
