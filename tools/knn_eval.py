#!/usr/bin/env python
"""Weighted k-NN accuracy (Wu et al., CVPR 2018, as in DINO) of a checkpoint's plain backbone.

    python tools/knn_eval.py CONFIG CHECKPOINT [--data-root DIR] [--k 20 --k 200] ...
    python tools/knn_eval.py CONFIG --random-init ...        # the same backbone, untrained

CONFIG: a pre-training config (A2MIM, SimMIM, any algorithm with a backbone) or any MMPretrain
classifier config; CHECKPOINT: a runner checkpoint of a pre-training or fine-tuning run, or a
backbone export (tools/export_backbone.py). Only the ``backbone.*`` weights are used: features
are the backbone's last output without mask or fill, pooled (class token where the backbone
has one, else spatial mean) and L2-normalised.

Data: a config with the pre-training runtime's ``default_hooks.knn_eval`` supplies the bank and
query splits, the per-class bank subset, k, the crop and the batch size; flags override them.
Otherwise the default is ``--dataset-type CustomDataset --bank train --query val`` (sub-folder
per class) under --data-root. Distributed: ``torchrun --nproc_per_node=N tools/knn_eval.py ...
--launcher pytorch`` (each process extracts its shard; the result equals one process).

Cost: (bank + queries) forwards; bank memory bank x feature width x 2 bytes (fp16).
"""
import argparse
import copy
import json
import logging
import sys
from pathlib import Path

import torch
from mmengine.config import Config
from mmengine.dist import get_dist_info, init_dist, is_main_process
from mmengine.logging import MMLogger
from mmengine.registry import init_default_scope
from mmengine.runner.checkpoint import _load_checkpoint
from mmengine.utils import import_modules_from_strings

from a2mim_plugin.analysis.progress import AnalysisProgress
from a2mim_plugin.evaluation import build_split, eval_pipeline, knn_eval_model
from a2mim_plugin.evaluation.features import shard


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('config', help='pre-training or classifier config')
    parser.add_argument('checkpoint', nargs='?', default=None,
                        help='runner checkpoint or backbone export (omit with --random-init)')
    parser.add_argument('--random-init', action='store_true',
                        help="evaluate the config's backbone at its random initialisation")
    data = parser.add_argument_group('data (defaults: the config\'s knn_eval hook)')
    data.add_argument('--data-root', default=None,
                      help="dataset root (default: the hook's, else the train dataloader's)")
    data.add_argument('--dataset-type', default=None,
                      help='ImageNet (splits train/val) or CustomDataset (folders)')
    data.add_argument('--bank', default=None, help='bank split / folder, e.g. train')
    data.add_argument('--query', default=None, help='query split / folder, e.g. val')
    data.add_argument('--bank-per-class', type=int, default=None,
                      help='seeded subset of the bank per class (0: all images)')
    data.add_argument('--query-per-class', type=int, default=None,
                      help='seeded subset of the queries per class (0: all images)')
    data.add_argument('--crop-size', type=int, default=None, help='centre crop (default 224)')
    proto = parser.add_argument_group('protocol')
    proto.add_argument('--k', type=int, action='append', default=None,
                       help='neighbours (repeat for several; default 20)')
    proto.add_argument('--temperature', type=float, default=None, help='default 0.07')
    proto.add_argument('--pool', choices=('auto', 'avg', 'cls'), default=None)
    proto.add_argument('--seed', type=int, default=0,
                       help='seed of the per-class subsets and of --random-init')
    run = parser.add_argument_group('run')
    run.add_argument('--batch-size', type=int, default=None, help='images per forward')
    run.add_argument('--num-workers', type=int, default=None)
    run.add_argument('--device', default='cuda' if torch.cuda.is_available() else 'cpu')
    run.add_argument('--launcher', choices=('none', 'pytorch', 'slurm'), default='none')
    run.add_argument('--progress-interval', type=float, default=10.,
                     help='seconds between progress lines')
    run.add_argument('--out', type=Path, default=None, help='write the metrics as JSON')
    args = parser.parse_args(argv)
    if (args.checkpoint is None) != args.random_init:
        parser.error('give a CHECKPOINT or --random-init (not both)')
    return args


def knn_settings(cfg: Config, args: argparse.Namespace) -> dict:
    """The hook's settings from the config (if any), overridden by the flags."""
    hook = copy.deepcopy((cfg.get('default_hooks') or {}).get('knn_eval') or {})
    hook = hook.to_dict() if hasattr(hook, 'to_dict') else dict(hook)
    root = args.data_root or cfg.get('train_dataloader', {}).get('dataset', {}).get('data_root')
    kind = args.dataset_type
    splits = {}
    for name, flag, default in (('bank', args.bank, 'train'), ('query', args.query, 'val')):
        split = dict(hook.get(name) or dict(type='CustomDataset', data_prefix=default))
        if kind is not None or flag is not None:
            kind_now = kind or split.get('type', 'CustomDataset')
            value = flag or split.get('split') or split.get('data_prefix') or default
            split = dict(type=kind_now, **({'split': value} if kind_now == 'ImageNet'
                                           else {'data_prefix': value}))
        if args.data_root or 'data_root' not in split:
            split['data_root'] = root
        splits[name] = split

    def pick(flag, key, default):
        return flag if flag is not None else hook.get(key, default)

    per_class = dict(bank=pick(args.bank_per_class, 'bank_per_class', None),
                     query=pick(args.query_per_class, 'query_per_class', None))
    per_class = {k: (v or None) for k, v in per_class.items()}
    return dict(splits=splits, per_class=per_class,
                ks=tuple(args.k) if args.k else tuple(hook.get('ks', (20, ))),
                temperature=pick(args.temperature, 'temperature', 0.07),
                pool=pick(args.pool, 'pool', 'auto'),
                crop_size=pick(args.crop_size, 'crop_size', 224),
                batch_size=pick(args.batch_size, 'batch_size', 64),
                num_workers=pick(args.num_workers, 'num_workers', 4))


def build_model(cfg: Config, checkpoint, seed: int, device: str, logger) -> torch.nn.Module:
    """The config's model with its random init, then the checkpoint's ``backbone.*`` tensors."""
    from mmpretrain.registry import MODELS
    model_cfg = copy.deepcopy(cfg.model)
    model_cfg.backbone.pop('init_cfg', None)  # the checkpoint is loaded below
    model_cfg.pop('init_cfg', None)
    model_cfg.setdefault('data_preprocessor', cfg.get('data_preprocessor'))
    torch.manual_seed(seed)
    model = MODELS.build(model_cfg)
    model.init_weights()
    if checkpoint is not None:
        ckpt = _load_checkpoint(str(checkpoint), map_location='cpu')
        state = ckpt.get('state_dict', ckpt) if isinstance(ckpt, dict) else {}
        state = {k[len('module.'):] if k.startswith('module.') else k: v
                 for k, v in state.items() if isinstance(v, torch.Tensor)}
        backbone = {k[len('backbone.'):]: v for k, v in state.items()
                    if k.startswith('backbone.')}
        own = model.backbone.state_dict()
        wrong = [f'{k}: checkpoint {tuple(v.shape)}, model {tuple(own[k].shape)}'
                 for k, v in backbone.items() if k in own and v.shape != own[k].shape]
        if not backbone or wrong:
            raise RuntimeError(
                f'{checkpoint} does not fit the backbone of {cfg.filename}: '
                + ('; '.join(wrong[:5]) if wrong else 'it holds no backbone.* weights')
                + '. Pass the config the checkpoint was trained with.')
        result = model.backbone.load_state_dict(backbone, strict=False)
        logger.info(f'loaded {len(backbone) - len(result.unexpected_keys)} backbone tensors from '
                    f'{checkpoint}; not in the checkpoint (kept at init): '
                    f'{result.missing_keys or "none"}; unused: {result.unexpected_keys or "none"}')
        if len(result.missing_keys) > len(own) // 2:
            raise RuntimeError(f'{checkpoint} fills only {len(own) - len(result.missing_keys)} '
                               f'of {len(own)} backbone tensors of {cfg.filename}.')
    return model.to(device)


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.launcher != 'none':
        init_dist(args.launcher)
    logger = MMLogger.get_instance('knn_eval', log_level='INFO')
    logger.setLevel(logging.INFO)
    cfg = Config.fromfile(args.config)
    if cfg.get('custom_imports'):
        import_modules_from_strings(**cfg.custom_imports)
    init_default_scope(cfg.get('default_scope', 'mmpretrain'))
    settings = knn_settings(cfg, args)
    try:
        model = build_model(cfg, args.checkpoint, args.seed, args.device, logger)
        splits = {}
        for name, split_cfg in settings['splits'].items():
            split_cfg = dict(split_cfg)
            split_cfg.setdefault('pipeline', eval_pipeline(settings['crop_size']))
            splits[name] = build_split(split_cfg, settings['per_class'][name], args.seed)
    except (RuntimeError, ValueError, FileNotFoundError, KeyError) as error:
        print(f'error: {type(error).__name__}: {error}', file=sys.stderr)
        return 2
    rank, world_size = get_dist_info()
    local = sum(len(shard(s.indices, rank, world_size)) for s in splits.values())
    logger.info(f"bank {len(splits['bank'].indices)} images "
                f"({settings['splits']['bank']}), queries {len(splits['query'].indices)} "
                f"({settings['splits']['query']}), k={list(settings['ks'])}, "
                f"T={settings['temperature']}, {world_size} process(es): {local} forwards here")
    progress = AnalysisProgress(local, interval=args.progress_interval)
    result = knn_eval_model(
        model, splits['bank'], splits['query'], settings['ks'], settings['temperature'],
        settings['pool'], settings['batch_size'], settings['num_workers'],
        progress=lambda n: progress.update(n, 'k-NN features'))
    metrics = result.metrics()
    if is_main_process():
        logger.info(f'{progress.images_per_second:.1f} images/s per process')
        for k in result.top1:
            logger.info(f'k={k}: top-1 {result.top1[k]:.2f} %, top-5 {result.top5[k]:.2f} % '
                        f'({result.num_queries} queries, bank {result.num_bank})')
        if args.out is not None:
            args.out.parent.mkdir(parents=True, exist_ok=True)
            args.out.write_text(json.dumps(dict(
                metrics, config=args.config, checkpoint=args.checkpoint,
                num_bank=result.num_bank, num_queries=result.num_queries,
                images_per_second=progress.images_per_second), indent=2) + '\n')
    return 0


if __name__ == '__main__':
    sys.exit(main())
