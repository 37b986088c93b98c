"""Convert released official A2MIM (OpenMixup) weights to this plugin's backbone layout.

Example::

    python tools/convert_official.py a2mim_r50_l3_ep300.pth r50_a2mim.pth --arch resnet
    python tools/convert_official.py a2mim_vit_base_l0_ep800.pth vit_b_a2mim.pth --arch vit
"""
import argparse
import os
import sys

DESCRIPTION = """\
Convert an official A2MIM checkpoint (github.com/Westlake-AI/openmixup, mmcv 1.x) to the
layout of this plugin: {'state_dict': {'backbone.<name>': tensor}, 'meta': {...}}, the same
form tools/export_backbone.py writes. Downstream configs load it with

    backbone=dict(..., init_cfg=dict(type='Pretrained', checkpoint='OUT.pth',
                                      prefix='backbone.'))

Accepted inputs: a full OpenMixup checkpoint ('backbone.*', 'neck.*', 'head.*' in
'state_dict'; neck and head are dropped; a leading 'module.' is stripped) or the
backbone-only file of OpenMixup's tools/model_converters/extract_backbone_weights.py (plain
keys, 'author': 'openmixup').

Key mapping (official names read from openmixup/models/backbones/vision_transformer.py,
mim_vit.py, resnet_mmcls.py, mim_resnet.py, convnext.py and models/utils/layers/attention.py):
  vit, --vit-layout beit (default; MMPretrain BEiTViT = this plugin's A2MIMViT): names are
      kept (patch_embed.projection, cls_token, pos_embed, layers.N.{ln1,ln2,gamma_1,gamma_2},
      layers.N.attn.{qkv.weight,q_bias,v_bias,relative_position_bias_table,
      relative_position_index,proj}, layers.N.ffn.layers.{0.0,1}, final ln1); the stored
      relative_position_index must equal the one BEiTViT computes.
  vit, --vit-layout plain (MMPretrain VisionTransformer = A2MIMPlainViT; only for official
      ViTs built with use_window=False, i.e. plain qkv bias and no relative position bias):
      gamma_1 -> attn.gamma1.weight, gamma_2 -> ffn.gamma2.weight, other names kept.
  resnet, convnext: names are kept (OpenMixup's mmcls-style ResNet and ConvNeXt use
      MMPretrain's names).
  mask_token / mask_gamma: dropped, or with --keep-mask-token reshaped to this plugin's
      shapes (ViT token (1, 1, C) and gamma (C,); CNN token and gamma (1, C, 1, 1)).

The architecture (width, depth, heads, image size) is read from the weights; --depth,
--arch-name, --num-heads and --img-size cross-check it or fill in what the weights cannot
tell. The result is loaded into the plain backbone (and, with --keep-mask-token, into the
A2MIM backbone); any missing, unexpected or mis-shaped key is an error (exit code 1, keys
listed on stderr) and nothing is written."""

EPILOG = """\
exit codes: 0 written, 1 the weights do not match / cannot be read, 2 bad arguments"""


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog='convert_official.py', description=DESCRIPTION, epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('src', metavar='IN.pth', help='official OpenMixup/A2MIM checkpoint')
    parser.add_argument('dst', metavar='OUT.pth', help='converted checkpoint to write')
    parser.add_argument('--arch', required=True, choices=('vit', 'resnet', 'convnext'),
                        help='backbone family of the checkpoint')
    parser.add_argument('--depth', type=int,
                        help='resnet: expected depth (18/34/50/101/152/200), cross-checked')
    parser.add_argument('--arch-name',
                        help='vit: official arch (small = 768-d x 8 layers, base, large, '
                        'deit-small, ...), gives the heads of ViTs without relative position '
                        'bias; convnext: MMPretrain arch name (tiny, small, base, ...), '
                        'cross-checked')
    parser.add_argument('--num-heads', type=int,
                        help='vit: attention heads (read from the relative position bias '
                        'when present)')
    parser.add_argument('--img-size', type=int,
                        help='vit: pre-training image size (read from pos_embed when present)')
    parser.add_argument('--vit-layout', choices=('beit', 'plain'), default='beit',
                        help='vit: target MMPretrain BEiTViT (A2MIMViT, default) or '
                        'VisionTransformer (A2MIMPlainViT)')
    parser.add_argument('--keep-mask-token', action='store_true',
                        help='keep mask_token / mask_gamma, reshaped to the plugin shapes')
    parser.add_argument('--mask-layer', type=int,
                        help='with --keep-mask-token: the mask_layer of the A2MIM backbone the '
                        'weights are checked against (default: 0 for ViT; for CNNs the '
                        'deepest stage matching the token width)')
    args = parser.parse_args(argv)
    if args.depth is not None and args.arch != 'resnet':
        parser.error('--depth is for --arch resnet')
    if args.arch != 'vit' and (args.num_heads or args.img_size or args.vit_layout != 'beit'):
        parser.error('--num-heads, --img-size and --vit-layout are for --arch vit')
    if args.arch == 'resnet' and args.arch_name:
        parser.error('--arch-name is for --arch vit / convnext (use --depth for resnet)')
    if args.mask_layer is not None and not args.keep_mask_token:
        parser.error('--mask-layer needs --keep-mask-token (it chooses the A2MIM backbone the '
                     'kept mask_token is checked against)')
    return args


def convert(args) -> dict:
    from a2mim_plugin.utils import weights as W

    ckpt = W.load_checkpoint_weights_only(args.src)
    state, form = W.backbone_state_dict(W.raw_state_dict(ckpt))
    plain_state, mask_state = W.split_mask_keys(state)
    if args.arch == 'vit':
        plain_cfg, plain_state = W.infer_official_vit(
            plain_state, arch_name=args.arch_name, num_heads=args.num_heads,
            img_size=args.img_size, layout=args.vit_layout)
    elif args.arch == 'resnet':
        plain_cfg, plain_state = W.infer_official_resnet(plain_state, depth=args.depth)
    else:
        plain_cfg, plain_state = W.infer_official_convnext(plain_state,
                                                           arch_name=args.arch_name)
    notes = []
    if plain_cfg['type'] == 'ResNet' and plain_cfg['depth'] not in (18, 34, 50, 101, 152):
        notes.append(f'ResNet-{plain_cfg["depth"]} is not a depth of the stock MMPretrain / '
                     'MMDetection / MMSegmentation ResNet (nor of A2MIMResNet): downstream '
                     'needs a ResNet subclass whose arch_settings add it. The weights were '
                     'checked against such a subclass.')
    for note in notes:
        print(f'convert_official: warning: {note}', file=sys.stderr)
    model = W.build_plain_backbone(plain_cfg)
    W.verify_or_raise(model, plain_state,
                      what=f'the plain backbone {W.describe(model)} built from {plain_cfg}')
    out_state = dict(plain_state)
    a2mim_cfg = None
    if args.keep_mask_token and mask_state:
        mask_state = W.reshape_mask_params(mask_state, channels_first=args.arch != 'vit')
        a2mim_cfg = W.a2mim_cfg_for(plain_cfg, mask_state, args.mask_layer)
        a2mim = W.build_pretrain_backbone(a2mim_cfg)
        out_state.update(mask_state)
        W.verify_or_raise(a2mim, out_state,
                          what=f'the A2MIM backbone {W.describe(a2mim)} built from {a2mim_cfg}')
    meta = W.provenance('a2mim_plugin tools/convert_official.py', args.src, dict(
        source_form=f'official OpenMixup {form} checkpoint',
        source_author=ckpt.get('author'), arch=args.arch, backbone_cfg=plain_cfg,
        a2mim_backbone_cfg=a2mim_cfg, checked_against=W.describe(model),
        mask_params='kept' if args.keep_mask_token and mask_state else 'dropped', notes=notes,
        dropped_mask_params=[] if args.keep_mask_token else sorted(mask_state)))
    W.save_atomic(dict(state_dict=W.with_prefix(out_state), meta=meta), args.dst)
    return meta


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        import a2mim_plugin  # noqa: F401
    except ImportError:  # run from a checkout without installing the plugin
        sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    from a2mim_plugin.utils.weights import run_tool

    return run_tool('convert_official', convert, args, 'official OpenMixup checkpoint')


if __name__ == '__main__':
    sys.exit(main())
