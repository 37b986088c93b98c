"""Time the plugin's A2MIM and SimMIM configs against MMPretrain's SparK, SimMIM, MAE and MixMIM,
side by side in one process, eager and compiled; print a Markdown table and write JSON.

Groups (same backbone size, each entry its own shipped config, see ``bench/peers.py``):
r50 (A2MIM, SimMIM, SparK), convnext_s (A2MIM, SimMIM), vit_b (A2MIM, SimMIM, MAE), swin_b
(A2MIM, SimMIM, MMPretrain SimMIM, MixMIM). Within a group all entries step alternately on the
same synthetic images (each with its own config's mask), the order rotating every step.

Examples::

    # GPU: 224 px (Swin 192), bf16, eager and compiled
    python bench/bench_peers.py --device cuda --batch-size 128 --amp bf16 --compile both
    # this repository's CPU table
    python bench/bench_peers.py --device cpu --img-size 96 --batch-size 2 --steps 3 --warmup 1
"""
import argparse
import json
import platform
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import peers  # noqa: E402


def machine(device: torch.device) -> str:
    if device.type == 'cuda':
        return torch.cuda.get_device_name(device)
    return f'{platform.processor() or platform.machine()} CPU, {torch.get_num_threads()} threads'


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--device', choices=['cpu', 'cuda'], default='cuda')
    parser.add_argument('--groups', default=','.join(peers.GROUPS),
                        help=f'comma-separated subset of {list(peers.GROUPS)}')
    parser.add_argument('--img-size', type=int, default=None,
                        help='input px for every group (default 224, Swin 192)')
    parser.add_argument('--batch-size', type=int, default=64)
    parser.add_argument('--amp', choices=['none', 'bf16', 'fp16'], default='none')
    parser.add_argument('--compile', choices=['off', 'on', 'both'], default='off')
    parser.add_argument('--compile-backend', default='inductor')
    parser.add_argument('--methods', default=None,
                        help="comma-separated subset of the entries, e.g. "
                             "'A2MIM,SparK (MMPretrain)'")
    parser.add_argument('--steps', type=int, default=10)
    parser.add_argument('--warmup', type=int, default=3)
    parser.add_argument('--threads', type=int, default=None, help='CPU intra-op threads')
    parser.add_argument('--out', default='bench/peers.json', help='JSON output path')
    args = parser.parse_args(argv)

    peers.setup()
    if args.device == 'cuda' and not torch.cuda.is_available():
        raise SystemExit('--device cuda asked for, but CUDA is not available.')
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    groups = [g.strip() for g in args.groups.split(',') if g.strip()]
    unknown = [g for g in groups if g not in peers.GROUPS]
    if unknown:
        raise SystemExit(f'Unknown --groups {unknown}; choose from {list(peers.GROUPS)}.')
    modes = {'off': [False], 'on': [True], 'both': [False, True]}[args.compile]
    head = (f'# MIM training steps side by side: {machine(device)}, torch {torch.__version__}, '
            f'batch {args.batch_size}, amp {args.amp}, {args.steps} timed steps (median) after '
            f'{args.warmup} warm-up, compile backend {args.compile_backend}')
    print(head, flush=True)
    rows = []
    for group in groups:
        size = args.img_size or peers.FULL_SIZE[group]
        if group == 'swin_b' and size < peers.FULL_SIZE[group]:
            # window 6 needs a 6x6 last stage (stride 32): 192 px at least
            print(f'  swin_b: {size} px is below its window; using 192 px')
            size = peers.FULL_SIZE[group]
        rows += peers.bench_group(group, img_size=size, batch_size=args.batch_size,
                                  amp=args.amp, device=device, compile_modes=modes,
                                  compile_backend=args.compile_backend, steps=args.steps,
                                  warmup=args.warmup, log=lambda s: print(s, flush=True),
                                  names=args.methods.split(',') if args.methods else None)
        print(peers.markdown_table([r for r in rows if r['group'] == group]), flush=True)
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(dict(
            machine=machine(device), torch=torch.__version__, command=' '.join(sys.argv),
            args=vars(args), rows=rows), indent=1))
    print()
    print(peers.markdown_table(rows))
    print(f'\nJSON: {args.out}')


if __name__ == '__main__':
    main()
