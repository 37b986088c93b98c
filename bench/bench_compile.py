"""Compiled against eager training steps of small A2MIM models, side by side in one process.

Each model is a shipped A2MIM config with a smaller backbone (below), built twice with the same
weights: eager and ``torch.compile(model.train_step)`` (what the runner does for
``compile=True``). After the warm-up (the compiled entry traces and compiles on its first step
and once more on its second, see ``bench/README.md``) the two step alternately; the table gives
the median step times, their ratio and the compile time (the first two compiled steps minus
two eager steps).

Example (this repository's CPU numbers)::

    python bench/bench_compile.py --device cpu --threads 1 --out bench/results/compile_cpu.json
"""
import argparse
import json
import platform
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import peers  # noqa: E402

# model -> (peer group whose A2MIM config it shrinks, override of cfg.model)
SMALL = {
    'resnet18': ('r50', dict(backbone=dict(depth=18), neck=dict(in_channels=512))),
    'vit-4x192': ('vit_b', dict(backbone=dict(arch=dict(embed_dims=192, num_layers=4,
                                                         num_heads=3,
                                                         feedforward_channels=768)),
                                neck=dict(in_channels=192))),
}


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--device', choices=['cpu', 'cuda'], default='cpu')
    parser.add_argument('--models', default=','.join(SMALL), help=f'subset of {list(SMALL)}')
    parser.add_argument('--img-size', type=int, default=96)
    parser.add_argument('--batch-size', type=int, default=4)
    parser.add_argument('--backend', default='inductor')
    parser.add_argument('--steps', type=int, default=5)
    parser.add_argument('--warmup', type=int, default=2, help='>= 2 (the recompilation)')
    parser.add_argument('--threads', type=int, default=None)
    parser.add_argument('--out', default='bench/results/compile_cpu.json')
    args = parser.parse_args(argv)
    peers.setup()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    machine = (torch.cuda.get_device_name(device) if device.type == 'cuda' else
               f'{platform.machine()} CPU, {torch.get_num_threads()} threads')
    rows = []
    for name in args.models.split(','):
        group, override = SMALL[name]
        config = peers.GROUPS[group][0][1]
        entries = [peers.build_entry(group, name, config, img_size=args.img_size,
                                     batch_size=args.batch_size, amp='none', device=device,
                                     compiled=compiled, compile_backend=args.backend,
                                     override=override)
                   for compiled in (False, True)]
        start = time.perf_counter()
        eager, compiled = peers.step_alternately(entries, device=device, steps=args.steps,
                                                 warmup=args.warmup)
        compile_s = sum(compiled['first_steps_s']) - 2 * eager['step_s']
        rows.append(dict(model=name, config=config, img_size=args.img_size,
                         batch_size=args.batch_size, backend=args.backend,
                         eager_ms=eager['step_s'] * 1e3, compiled_ms=compiled['step_s'] * 1e3,
                         compiled_over_eager=compiled['step_s'] / eager['step_s'],
                         compile_s=compile_s, first_steps_s=compiled['first_steps_s'],
                         loss_eager=eager['losses']['loss'],
                         loss_compiled=compiled['losses']['loss'],
                         wall_s=time.perf_counter() - start))
        print(markdown(rows[-1:]), flush=True)
    report = dict(machine=machine, torch=torch.__version__, command=' '.join(sys.argv),
                  args=vars(args), rows=rows)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=1))
    print(f'\n{markdown(rows)}\n\nJSON: {args.out}')
    return report


def markdown(rows) -> str:
    lines = ['| model | px | batch | backend | eager ms/step | compiled ms/step | compiled / eager '
             '| compile s (first 2 steps) |', '|---|---|---|---|---|---|---|---|']
    for r in rows:
        lines.append(f"| {r['model']} | {r['img_size']} | {r['batch_size']} | {r['backend']} | "
                     f"{r['eager_ms']:.0f} | {r['compiled_ms']:.0f} | "
                     f"{r['compiled_over_eager']:.2f} | {r['compile_s']:.0f} |")
    return '\n'.join(lines)


if __name__ == '__main__':
    main()
