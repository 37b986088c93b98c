"""Loss and gradient fingerprint of pre-training configs on one fixed batch.

Refactors of shared model code must keep the numerics: run this before and after the change
and compare the two JSON files (``--compare``). Each config's model is built from the config
file as it is (full size, float32, on the CPU), initialised with a fixed seed, and given the
same two random images; the mask comes from the config's own ``SimMIMMaskGenerator``
(seeded). Recorded per config: every loss term, and the sum and sum of squares of the gradient
of every parameter group (backbone, mask parameters, neck, head) after ``backward``.

Example::

    python tools/pretrain_losses.py configs/a2mim configs/simmim_baselines --out before.json
    # ... change the code ...
    python tools/pretrain_losses.py configs/a2mim configs/simmim_baselines --out after.json \
        --compare before.json
"""
import argparse
import glob
import json
import os
import sys
from typing import Dict, List

import numpy as np
import torch

MASK_KEYS = ('mask_token', 'mask_gamma')


def config_files(paths: List[str]) -> List[str]:
    """Pre-training configs among ``paths`` (files, or folders searched non-recursively)."""
    files = []
    for path in paths:
        files += sorted(glob.glob(os.path.join(path, '*.py'))) if os.path.isdir(path) else [path]
    return files


def _mask_generator_cfg(cfg) -> dict:
    for step in cfg.train_dataloader.dataset.pipeline:
        if step['type'] == 'SimMIMMaskGenerator':
            return dict(step)
    raise ValueError('no SimMIMMaskGenerator in train_dataloader.dataset.pipeline')


def fingerprint(config: str, seed: int = 0) -> Dict[str, float]:
    """Losses and gradient statistics of ``config`` on the fixed batch."""
    from mmengine.config import Config
    from mmengine.registry import init_default_scope
    from mmpretrain.registry import MODELS, TRANSFORMS
    from mmpretrain.structures import DataSample

    cfg = Config.fromfile(config)
    init_default_scope(cfg.get('default_scope', 'mmpretrain'))
    mask_cfg = _mask_generator_cfg(cfg)
    size = mask_cfg['input_size']
    torch.manual_seed(seed)
    np.random.seed(seed)
    model = MODELS.build(cfg.model)
    model.init_weights()
    model.train()

    generator = TRANSFORMS.build(mask_cfg)
    np.random.seed(seed + 1)
    samples = []
    for _ in range(2):
        sample = DataSample()
        sample.set_mask(torch.from_numpy(np.asarray(generator(dict())['mask'])))
        samples.append(sample)
    gen = torch.Generator().manual_seed(seed + 2)
    images = torch.randint(0, 256, (2, 3, size, size), generator=gen, dtype=torch.uint8)
    data = model.data_preprocessor(dict(inputs=images, data_samples=samples), True)
    torch.manual_seed(seed + 3)  # drop path
    losses = model.loss(data['inputs'], data['data_samples'])
    sum(losses.values()).backward()

    out = {name: float(value) for name, value in losses.items()}
    groups: Dict[str, List[torch.Tensor]] = {}
    for name, param in model.named_parameters():
        if param.grad is None:
            continue
        leaf = name.split('.')[-1]
        group = leaf if leaf in MASK_KEYS else name.split('.')[0]
        groups.setdefault(group, []).append(param.grad.double().flatten())
    for group, grads in sorted(groups.items()):
        flat = torch.cat(grads)
        out[f'grad_sum/{group}'] = float(flat.sum())
        out[f'grad_sq/{group}'] = float((flat**2).sum())
    return out


def compare(now: Dict[str, dict], before: Dict[str, dict]) -> int:
    """Print the differences; return the number of configs that are not bit-identical."""
    changed = 0
    for name in sorted(set(now) | set(before)):
        a, b = now.get(name), before.get(name)
        if a != b:
            changed += 1
            print(f'DIFFERS {name}:')
            for key in sorted(set(a or {}) | set(b or {})):
                if (a or {}).get(key) != (b or {}).get(key):
                    print(f'    {key}: before {(b or {}).get(key)!r} now {(a or {}).get(key)!r}')
    print(f'{len(now)} configs, {changed} differ')
    return changed


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('paths', nargs='+', help='config files or folders of configs')
    parser.add_argument('--out', required=True, help='JSON file to write')
    parser.add_argument('--compare', help='an earlier JSON file; exit 1 unless bit-identical')
    parser.add_argument('--threads', type=int, default=2,
                        help='torch threads (keep equal between runs: sums depend on it)')
    args = parser.parse_args(argv)
    import a2mim_plugin  # noqa: F401

    torch.set_num_threads(args.threads)
    results = {}
    for config in config_files(args.paths):
        results[os.path.relpath(config)] = fingerprint(config)
        print(os.path.relpath(config), json.dumps(results[os.path.relpath(config)]), flush=True)
    with open(args.out, 'w') as f:
        json.dump(results, f, indent=1, sort_keys=True)
    if args.compare:
        with open(args.compare) as f:
            return 1 if compare(results, json.load(f)) else 0
    return 0


if __name__ == '__main__':
    sys.exit(main())
