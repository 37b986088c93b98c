#!/usr/bin/env python
"""Print what a training run left behind: loss trend, k-NN accuracy, checkpoints and
reconstruction pictures.

    python tools/summarize_run.py work_dirs/a2mim_demo
"""
import argparse
import json
import sys
from pathlib import Path
from typing import Tuple


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('work_dir', type=Path, help='the --work-dir of the run')
    args = parser.parse_args()
    runs = sorted(args.work_dir.glob('*/vis_data/scalars.json'))
    if not runs:
        print(f'no run logs (*/vis_data/scalars.json) under {args.work_dir}', file=sys.stderr)
        return 1
    log = runs[-1]
    records = [json.loads(line) for line in log.read_text().splitlines() if line.strip()]
    losses = [(r['step'], r['loss']) for r in records if 'loss' in r]
    if not losses:
        print(f'{log} holds no loss records', file=sys.stderr)
        return 1
    k = max(1, len(losses) // 10)
    head = sum(v for _, v in losses[:k]) / k
    tail = sum(v for _, v in losses[-k:]) / k
    print(f'log:          {log.parent.parent / (log.parent.parent.name + ".log")}')
    print(f'loss:         first {losses[0][1]:.4f} (step {losses[0][0]}), '
          f'last {losses[-1][1]:.4f} (step {losses[-1][0]})')
    print(f'loss trend:   mean of first {k} logs {head:.4f} -> last {k} logs {tail:.4f} '
          f'({100 * (tail - head) / head:+.1f}%)')
    knn = [(r['step'], r['knn/top1']) for r in records if 'knn/top1' in r]
    if knn:  # KNNEvalHook (docs/evaluation.md)
        print('k-NN top-1:   ' + ', '.join(f'{v:.1f}% (step {s})' for s, v in knn))
    for ckpt in sorted(args.work_dir.glob('*.pth'), key=_by_step):
        print(f'checkpoint:   {ckpt}')
    for picture in sorted(log.parent.glob('vis_image/*.png'), key=_by_step):
        print(f'picture:      {picture}')
    return 0


def _by_step(path: Path) -> Tuple[str, int]:
    """Sort ``epoch_9.pth`` before ``epoch_10.pth`` and ``reconstruction_630.png`` by its
    step; a name without a trailing number sorts before the numbered ones of its stem."""
    stem, _, step = path.stem.rpartition('_')
    return (stem, int(step)) if step.isdigit() else (path.stem, -1)


if __name__ == '__main__':
    sys.exit(main())
