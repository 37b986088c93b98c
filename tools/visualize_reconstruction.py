#!/usr/bin/env python
"""Draw A2MIM reconstructions of a checkpoint on any images, as the training hook does.

Each row: original / masked input / prediction / prediction with the visible pixels pasted
back (de-normalised, clipped), and with --spectrum the log amplitude spectra of the original and
of the pasted-back reconstruction. The mask comes from the mask generator of the config's
training pipeline (e.g. SimMIMMaskGenerator), seeded by --seed; images are resized (shorter
side) and centre-cropped to its input_size.

    python tools/visualize_reconstruction.py \\
        configs/demo/a2mim_resnet18_1xb16-coslr-30e_photos-128px.py \\
        work_dirs/a2mim_demo/epoch_30.pth data/a2mim_demo/train/astronaut/astronaut_000.JPEG \\
        data/a2mim_demo/train/coffee --num-images 4 --spectrum --out reconstruction.png
"""
import argparse
import sys
from pathlib import Path
from typing import List

import numpy as np
import torch
from mmengine.config import Config
from mmengine.dataset import Compose
from mmengine.registry import init_default_scope
from mmengine.runner import load_checkpoint
from mmengine.runner.utils import set_random_seed
from mmengine.utils import import_modules_from_strings
from PIL import Image

IMAGE_SUFFIXES = ('.jpg', '.jpeg', '.png', '.bmp', '.webp')


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('config', help='the pre-training config of the checkpoint')
    parser.add_argument('checkpoint', help='an A2MIM (or SimMIM-style) pre-training checkpoint')
    parser.add_argument('images', nargs='+', help='image files or folders (searched recursively)')
    parser.add_argument('--out', type=Path, required=True, help='the PNG to write')
    parser.add_argument('--num-images', type=int, default=8,
                        help='at most this many images (rows)')
    parser.add_argument('--spectrum', action='store_true',
                        help='add the log amplitude spectra of original and reconstruction')
    parser.add_argument('--seed', type=int, default=0, help='seed of the masks')
    parser.add_argument('--device', default='cuda' if torch.cuda.is_available() else 'cpu')
    return parser.parse_args(argv)


def find_images(paths: List[str], limit: int) -> List[Path]:
    """Image files among ``paths`` (folders searched recursively, sorted), at most ``limit``."""
    found = []
    for path in map(Path, paths):
        if path.is_dir():
            found += sorted(p for p in path.rglob('*') if p.suffix.lower() in IMAGE_SUFFIXES)
        elif path.is_file():
            found.append(path)
        else:
            raise FileNotFoundError(f'{path} is neither an image file nor a folder.')
    if not found:
        raise FileNotFoundError(f'No image ({", ".join(IMAGE_SUFFIXES)}) under {paths}.')
    return found[:limit]


def mask_pipeline(cfg: Config) -> list:
    """Load, resize, centre-crop to the mask generator's input size, mask, pack."""
    pipeline = cfg.get('train_dataloader', {}).get('dataset', {}).get('pipeline', [])
    generators = [dict(t) for t in pipeline if 'MaskGenerator' in str(t.get('type', ''))]
    if not generators:
        raise ValueError('The config\'s train_dataloader.dataset.pipeline has no mask generator '
                         '(e.g. SimMIMMaskGenerator); the reconstruction needs the mask the '
                         'model was trained with.')
    size = generators[0]['input_size']
    return [dict(type='LoadImageFromFile'),
            dict(type='ResizeEdge', scale=size, edge='short', backend='pillow',
                 interpolation='bicubic'),
            dict(type='CenterCrop', crop_size=size), generators[0], dict(type='PackInputs')]


def main(argv=None) -> int:
    args = parse_args(argv)
    cfg = Config.fromfile(args.config)
    if cfg.get('custom_imports'):
        import_modules_from_strings(**cfg.custom_imports)
    init_default_scope(cfg.get('default_scope', 'mmpretrain'))
    from mmpretrain.registry import MODELS

    from a2mim_plugin.engine.hooks.reconstruction_vis_hook import (COLUMNS, SPECTRUM_COLUMNS,
                                                                   reconstruction_picture)
    try:
        paths = find_images(args.images, args.num_images)
        pipeline = Compose(mask_pipeline(cfg))
    except (FileNotFoundError, ValueError) as error:
        print(f'error: {error}', file=sys.stderr)
        return 2
    model_cfg = cfg.model.copy()
    if cfg.get('data_preprocessor') is not None:  # as mmengine's Runner merges it
        model_cfg.setdefault('data_preprocessor', cfg.data_preprocessor)
    model = MODELS.build(model_cfg)
    if not hasattr(model, 'reconstruct'):
        print(f'error: {type(model).__name__} (model.type in {args.config}) has no reconstruct(); '
              'pass a masked-image-modelling pre-training config such as A2MIM.',
              file=sys.stderr)
        return 2
    load_checkpoint(model, args.checkpoint, map_location='cpu', strict=True)
    model.to(args.device).eval()
    set_random_seed(args.seed)
    items = [pipeline(dict(img_path=str(p))) for p in paths]
    batch = dict(inputs=torch.stack([item['inputs'] for item in items]),  # as default_collate
                 data_samples=[item['data_samples'] for item in items])
    picture = reconstruction_picture(model, batch, spectrum=args.spectrum)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.ascontiguousarray(picture)).save(args.out)
    columns = COLUMNS + (SPECTRUM_COLUMNS if args.spectrum else ())
    print(f'wrote {args.out}: {len(paths)} rows ({", ".join(p.name for p in paths)}), '
          f'columns: {" / ".join(columns)}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
