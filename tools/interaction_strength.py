#!/usr/bin/env python
"""Multi-order interaction strength of fine-tuned classifiers (Fig. 1 of the A2MIM paper, after
Deng et al., ICLR 2022): J_m against m/n, one curve per model.

    python tools/interaction_strength.py \\
        --model A2MIM A2MIM_FINETUNE_CONFIG.py a2mim_ft/epoch_30.pth \\
        --model scratch SCRATCH_CONFIG.py scratch_ft/epoch_30.pth \\
        --data-root data/imagenet --data-prefix train --num-images 200 --out-dir work_dirs/im

(`make interaction-demo` runs it on the demo's classifiers; its command is in the Makefile.)

Cost: every (image, model) takes 4 x pairs x sum over orders of min(contexts, C(n-2, m))
forwards (ImageNet protocol, 14 x 14 grid, 50 pairs, 50 contexts: 4 x 50 x (11 x 50 + 1 + 1)
= 110,400; orders 0 and n-2 have a single context). Only f of each forward is kept. Results
are cached per image (--cache-dir), so an interrupted run resumes and added images or models
reuse them.
Writes interaction.json, interaction.csv and interaction.png into --out-dir.
"""
import argparse
import logging
import sys
from pathlib import Path

import torch
from mmengine.logging import MMLogger

from a2mim_plugin.analysis import (BASELINES, OUTPUTS, InteractionCache, InteractionSettings,
                                   analyze_interactions, check_labels, load_classifier,
                                   load_labelled_images, plot_interaction_curves, write_results)


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--model', nargs=3, action='append', required=True,
                        metavar=('NAME', 'CONFIG', 'CHECKPOINT'),
                        help='a fine-tuned classifier (repeat for several curves)')
    data = parser.add_argument_group('images')
    data.add_argument('--data-root', required=True, help='dataset root')
    data.add_argument('--data-prefix', default='',
                      help='image folder under the root, e.g. train or val')
    data.add_argument('--ann-file', default='',
                      help='annotation file ("path label" lines); default: class sub-folders')
    data.add_argument('--num-images', type=int, default=None,
                      help='images, taken round-robin over the classes (default: all)')
    data.add_argument('--resize', type=int, default=256, help='shorter side after resizing')
    data.add_argument('--crop-size', type=int, default=224, help='centre crop')
    proto = parser.add_argument_group('protocol')
    proto.add_argument('--grid', type=int, default=14, help='g of the g x g patch grid')
    proto.add_argument('--pairs', type=int, default=50, help='pairs per image')
    proto.add_argument('--contexts', type=int, default=50, help='contexts per (pair, order)')
    proto.add_argument('--neighbourhood', type=int, default=5,
                       help='side of the window the second patch of a pair is drawn from')
    proto.add_argument('--seed', type=int, default=0)
    proto.add_argument('--output', choices=OUTPUTS, default='log_odds',
                       help='f: log-odds (default), log-probability or logit of the true class')
    proto.add_argument('--baseline', choices=BASELINES, default='dataset_mean',
                       help='value of removed patches: the dataset mean (0 after '
                       'normalisation, default) or each image\'s own mean')
    run = parser.add_argument_group('run')
    run.add_argument('--batch-size', type=int, default=256, help='masked images per forward')
    run.add_argument('--device', default='cuda' if torch.cuda.is_available() else 'cpu')
    run.add_argument('--amp', action='store_true',
                     help='autocast the forwards (float16 on CUDA, bfloat16 on CPU); off by '
                     'default since pair effects are small differences')
    run.add_argument('--out-dir', type=Path, required=True)
    run.add_argument('--cache-dir', type=Path, default=None,
                     help='per-image result cache (default: OUT_DIR/cache)')
    run.add_argument('--progress-interval', type=float, default=10.,
                     help='seconds between progress lines')
    run.add_argument('--title', default='', help='plot title')
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    if MMLogger.check_instance_created('interaction_strength'):
        logger = MMLogger.get_instance('interaction_strength')
    else:
        logger = MMLogger.get_instance('interaction_strength', log_level='INFO')
    logger.setLevel(logging.INFO)
    names = [name for name, _, _ in args.model]
    if len(set(names)) != len(names):
        print(f'error: --model names must differ, got {names}', file=sys.stderr)
        return 2
    try:
        settings = InteractionSettings(
            grid_size=args.grid, num_pairs=args.pairs, num_contexts=args.contexts,
            neighbourhood=args.neighbourhood, seed=args.seed, output=args.output,
            baseline=args.baseline, amp=args.amp, batch_size=args.batch_size)
        images, data_classes = load_labelled_images(
            args.data_root, args.data_prefix, args.ann_file, args.resize, args.crop_size,
            args.num_images)
        models, sources = {}, {}
        for name, config, checkpoint in args.model:
            model, classes = load_classifier(config, checkpoint, args.device)
            check_labels(images, model.head.num_classes, classes, data_classes, name)
            models[name], sources[name] = model, dict(config=config, checkpoint=checkpoint)
    except (RuntimeError, ValueError, FileNotFoundError) as error:
        print(f'error: {error}', file=sys.stderr)
        return 2
    logger.info(f'{len(images)} images x {len(models)} models, {settings.num_patches} patches, '
                f'orders {list(settings.orders)}, {settings.pairs_per_image} pairs, '
                f'{settings.num_contexts} contexts: {settings.forwards_per_image()} forwards '
                'per image and model')
    cache = InteractionCache(args.cache_dir or args.out_dir / 'cache')
    results = analyze_interactions(models, images, settings, cache, args.device,
                                   args.progress_interval)
    args.out_dir.mkdir(parents=True, exist_ok=True)
    sources_data = dict(data_root=str(args.data_root), data_prefix=args.data_prefix,
                        ann_file=args.ann_file, resize=args.resize, crop_size=args.crop_size)
    for source in sources.values():
        source.update(images=sources_data)
    write_results(list(results.values()), settings, sources, args.out_dir / 'interaction.json',
                  args.out_dir / 'interaction.csv')
    plot_interaction_curves(list(results.values()), args.out_dir / 'interaction.png', args.title)
    for result in results.values():
        curve = ', '.join(f'{m}:{j:.3f}' for m, j in zip(result.orders, result.relative))
        logger.info(f'{result.name}: J (order:J) {curve}')
    logger.info(f'wrote {args.out_dir / "interaction.json"}, interaction.csv, interaction.png')
    return 0


if __name__ == '__main__':
    sys.exit(main())
