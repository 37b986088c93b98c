"""Export the backbone of an A2MIM pre-training checkpoint for downstream use.

Example::

    python tools/export_backbone.py work_dirs/a2mim_r50/epoch_300.pth r50_a2mim_backbone.pth
    python tools/export_backbone.py epoch_800.pth vit_b_backbone.pth --target mmseg
    python tools/export_backbone.py work_dirs/a2mim_r50/epoch_300.pth r50_timm.pth --target timm
"""
import argparse
import os
import sys

DESCRIPTION = """\
Export the backbone of an A2MIM pre-training checkpoint (an mmengine runner checkpoint with
'backbone.*', 'neck.*', 'head.*', 'data_preprocessor.*' weights, optimizer and message hub)
as a backbone-only checkpoint:

    {'state_dict': {'backbone.<name>': tensor, ...}, 'meta': {...provenance...}}

The keys KEEP the 'backbone.' prefix, so the same downstream setting loads both the full
pre-training checkpoint and the exported one (MMPretrain, MMDetection and MMSegmentation):

    backbone=dict(..., init_cfg=dict(type='Pretrained', checkpoint='OUT.pth',
                                      prefix='backbone.'))

The backbone type and arguments come from the pre-training config stored in the checkpoint
(meta['cfg']) or from --cfg. The mask-only parameters (mask_token, mask_gamma) are dropped
unless --keep-mask-token. The result is loaded into the stock backbone the weights are meant
for: a preset's MMPretrain parent (A2MIMViT -> BEiTViT, A2MIMPlainViT -> VisionTransformer,
A2MIMResNet -> ResNet, A2MIMConvNeXt -> ConvNeXt), or the stock backbone itself for a config
with model.mask_token (any MMPretrain backbone); any missing, unexpected or mis-shaped key is
an error (exit code 1, keys listed on stderr) and nothing is written. The output is written
atomically; meta['backbone_cfg'] is the plain backbone config to use downstream."""

EPILOG = """\
targets:
  mmpretrain  check against MMPretrain's backbone (default)
  mmdet       ResNet: check against MMDetection's ResNet; ViT/ConvNeXt: MMPretrain's
              (use type='mmpretrain.BEiTViT' / 'mmpretrain.ConvNeXt' in MMDetection)
  mmseg       ResNet: check against MMSegmentation's ResNet (not ResNetV1c, whose deep stem
              has other weights); ViT/ConvNeXt as for mmdet

  timm        the weights in timm's names, without the 'backbone.' prefix, for
              timm.create_model(NAME, pretrained=False, **KWARGS) (meta['target_model']):
              ResNet (style 'pytorch'), ConvNeXt (V1/V2, out_indices=(3, )),
              VisionTransformer (A2MIMPlainViT), BEiTViT (A2MIMViT) -> Beit,
              SwinTransformer (out_indices=(3, )); other families and options without an
              exact counterpart are refused (docs/timm.md)
  torchvision ResNet only: torchvision.models.resnet<depth>(weights=None) with
              model.fc = torch.nn.Identity()
  For timm and torchvision the tool builds the model from that library, loads the weights
  with strict=True and compares its features with the MMPretrain backbone's on a fixed batch
  (float64, relative tolerance 1e-6; with the weights and with random weights of the same
  shapes); the differences are stored in meta['feature_check']. Nothing is written on a
  mismatch.

exit codes: 0 written, 1 the weights do not match / cannot be read, 2 bad arguments"""


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog='export_backbone.py', description=DESCRIPTION, epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('src', metavar='IN.pth', help='pre-training checkpoint (runner format)')
    parser.add_argument('dst', metavar='OUT.pth', help='backbone-only checkpoint to write')
    parser.add_argument('--target',
                        choices=('mmpretrain', 'mmdet', 'mmseg', 'timm', 'torchvision'),
                        default='mmpretrain',
                        help='downstream library whose plain backbone the weights are checked '
                        'against (default: mmpretrain)')
    parser.add_argument('--keep-mask-token', action='store_true',
                        help='keep backbone.mask_token / backbone.mask_gamma (they are then '
                        'unexpected keys for a plain backbone; MMEngine only warns about them)')
    parser.add_argument('--cfg', metavar='CONFIG.py',
                        help='pre-training config, for checkpoints without meta["cfg"] '
                        '(takes precedence over the stored one)')
    args = parser.parse_args(argv)
    if args.keep_mask_token and args.target in ('timm', 'torchvision'):
        parser.error(f'--keep-mask-token needs an OpenMMLab target (the mask token is a '
                     f'parameter of the MMPretrain backbone), not --target {args.target}')
    return args


def _backbone_cfg(args, ckpt) -> tuple:
    """(model.backbone, model.mask_token or None, where the config came from)."""
    from mmengine.config import Config

    if args.cfg:
        cfg = Config.fromfile(args.cfg)
        origin = os.path.abspath(args.cfg)
    else:
        text = (ckpt.get('meta') or {}).get('cfg')
        if not isinstance(text, str) or not text.strip():
            raise_error('the checkpoint stores no pre-training config (meta["cfg"]); '
                        'pass it with --cfg CONFIG.py')
        cfg = Config.fromstring(text, file_format='.py')
        origin = 'meta["cfg"] of the checkpoint'
    model = cfg.get('model', {})
    backbone, mask_spec = model.get('backbone'), model.get('mask_token')
    if not backbone or 'type' not in backbone:
        raise_error(f'no model.backbone with a type in the config ({origin}).')

    def plain(value):
        return value.to_dict() if hasattr(value, 'to_dict') else value

    return plain(backbone), plain(mask_spec), origin


def raise_error(message: str) -> None:
    from a2mim_plugin.utils.weights import WeightToolError
    raise WeightToolError(message)


def export(args) -> dict:
    from a2mim_plugin.utils import weights as W

    ckpt = W.load_checkpoint_weights_only(args.src)
    backbone_cfg, mask_spec, cfg_origin = _backbone_cfg(args, ckpt)
    state, form = W.backbone_state_dict(W.raw_state_dict(ckpt))
    if form != 'full':
        raise_error(f'{args.src} has no "backbone." keys: not a pre-training checkpoint of '
                    'this plugin (for official OpenMixup weights use '
                    'tools/convert_official.py).')
    plain_state, mask_state = W.split_mask_keys(state)

    foreign = args.target in W.FOREIGN_TARGETS
    library = 'mmpretrain' if foreign else args.target
    plain_cfg = W.plain_backbone_cfg(backbone_cfg, library)
    model = W.build_plain_backbone(plain_cfg, library)
    W.verify_or_raise(model, plain_state, ignore=W.MASK_KEYS,
                      what=f'the plain backbone {W.describe(model)} built from {plain_cfg}')
    if foreign:
        return _export_foreign(args, ckpt, model, plain_cfg, plain_state, mask_state,
                               backbone_cfg, mask_spec, cfg_origin)
    out_state = plain_state
    if args.keep_mask_token:
        a2mim = W.build_pretrain_backbone(backbone_cfg, mask_spec, mask_state)
        W.verify_or_raise(a2mim, state, what=f'the pre-training backbone {W.describe(a2mim)}')
        out_state = state
    meta = W.provenance('a2mim_plugin tools/export_backbone.py', args.src, dict(
        _source_meta(ckpt, cfg_origin, backbone_cfg, mask_spec), target=args.target,
        backbone_cfg=plain_cfg, checked_against=W.describe(model),
        mask_params='kept' if args.keep_mask_token else 'dropped',
        dropped_mask_params=[] if args.keep_mask_token else sorted(mask_state)))
    W.save_atomic(dict(state_dict=W.with_prefix(out_state), meta=meta), args.dst)
    return meta


def _source_meta(ckpt: dict, cfg_origin: str, backbone_cfg: dict, mask_spec) -> dict:
    src_meta = ckpt.get('meta') or {}
    return dict(source_form='mmengine runner checkpoint', source_epoch=src_meta.get('epoch'),
                source_iter=src_meta.get('iter'), source_time=src_meta.get('time'),
                source_experiment=src_meta.get('experiment_name'),
                source_mmengine_version=src_meta.get('mmengine_version'),
                config_from=cfg_origin, pretrain_backbone_cfg=backbone_cfg,
                mask_token_cfg=mask_spec)


def _export_foreign(args, ckpt, model, plain_cfg, plain_state, mask_state, backbone_cfg,
                    mask_spec, cfg_origin) -> dict:
    """--target timm / torchvision: map, build the library's model, load strictly, compare
    features; write only when they agree."""
    from a2mim_plugin.utils import weights as W

    target = W.convert_for_target(model, plain_state, args.target)
    check = W.check_target(target, model, plain_state)
    built = target.build()
    meta = W.provenance('a2mim_plugin tools/export_backbone.py', args.src, dict(
        _source_meta(ckpt, cfg_origin, backbone_cfg, mask_spec),
        target=args.target, mmpretrain_backbone_cfg=plain_cfg,
        target_model=dict(library=target.library, name=target.name, kwargs=target.kwargs),
        checked_against=W.describe(built), feature_check=check, key_prefix='',
        load_with=target.snippet(), note=target.note, mask_params='dropped',
        dropped_mask_params=sorted(mask_state), downstream=target.snippet()))
    state = {k: v.detach().clone().contiguous() for k, v in target.state.items()}
    W.save_atomic(dict(state_dict=state, meta=meta), args.dst)
    return meta


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        import a2mim_plugin  # noqa: F401
    except ImportError:  # run from a checkout without installing the plugin
        sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    from a2mim_plugin.utils.weights import run_tool

    return run_tool('export_backbone', export, args, 'backbone of')


if __name__ == '__main__':
    sys.exit(main())
