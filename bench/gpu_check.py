"""One run that checks the plugin on a GPU: AMP steps of every family, the peer table, compile.

1. AMP: for each family (ResNet-50, ConvNeXt-S, ViT-B, Swin-B; the shipped A2MIM configs) a few
   ``train_step`` calls through ``AmpOptimWrapper`` in fp16 and in bf16; every loss term must be
   finite, including the Fourier term (ConvNeXt-S has none in its official row: there the
   focal Fourier loss of its reconstruction is evaluated under the same autocast as a probe).
2. Peers: the table of ``bench_peers.py`` (A2MIM, SimMIM, SparK, MAE, MMPretrain SimMIM) at
   224 px (Swin 192) in bf16, eager, and compiled (``torch.compile(model.train_step)``, as the
   runner's ``compile=True``) for the A2MIM entry of ``--compile-groups``. The compiled entry
   gets one more warm-up step: mmengine's ``OptimWrapper._inner_count`` fails a dynamo guard
   on the second call and ``train_step`` is compiled once more (then the count is dynamic).
3. Peak memory (CUDA) of every AMP run and peer entry.

Everything goes to ``<out-dir>/gpu_check.json`` and ``<out-dir>/gpu_check.md``. A part that
would run past ``--budget-s`` is skipped and recorded as skipped. ``--device cpu`` runs the same
code on tiny models (the CI test runs it that way)::

    bash bench/gpu_check.sh                      # GPU, about 6-8 minutes on one GPU
    python bench/gpu_check.py --device cpu --out-dir /tmp/gpu_check
"""
import argparse
import copy
import json
import math
import platform
import sys
import time
from pathlib import Path
from typing import Dict, List

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import peers  # noqa: E402

FAMILIES = {g: entries[0][1] for g, entries in peers.GROUPS.items()}  # the A2MIM configs
# --device cpu: the same configs shrunk to tiny backbones (decoder channels to match).
TINY = {
    'r50': dict(backbone=dict(depth=18), neck=dict(in_channels=512)),
    'convnext_s': dict(backbone=dict(arch='atto'), neck=dict(in_channels=320)),
    'vit_b': dict(backbone=dict(arch=dict(embed_dims=64, num_layers=2, num_heads=2,
                                          feedforward_channels=128)),
                  neck=dict(in_channels=64)),
    'swin_b': dict(backbone=dict(arch=dict(embed_dims=32, depths=[1, 1, 1, 1],
                                           num_heads=[1, 1, 2, 2]),
                                 stage_cfgs=dict(block_cfgs=dict(window_size=2))),
                   neck=dict(in_channels=256)),
}


def merged(base: dict, override: dict) -> dict:
    """``base`` with ``override`` merged in (dicts into dicts; anything else replaced)."""
    out = copy.deepcopy(base)
    for key, value in override.items():
        out[key] = merged(out[key], value) if isinstance(value, dict) and isinstance(
            out.get(key), dict) else copy.deepcopy(value)
    return out


def amp_check(family: str, dtype: str, *, img_size: int, batch_size: int, steps: int,
              device: torch.device, tiny: bool) -> dict:
    """``steps`` AMP train steps of one family; the loss terms of the last one."""
    from mmpretrain.registry import MODELS
    cfg = peers.load_config(FAMILIES[family], img_size)
    if tiny:
        cfg.model = merged(cfg.model.to_dict(), TINY[family])
    torch.manual_seed(0)
    model = MODELS.build(cfg.model)
    model.init_weights()
    model.to(device).train()
    wrapper = peers.build_optim_wrapper(model, cfg, dtype, device)
    data = peers.synthetic_batch(cfg, batch_size, img_size, seed=0)
    if device.type == 'cuda':
        torch.cuda.reset_peak_memory_stats(device)
    losses: List[Dict[str, float]] = []
    for _ in range(steps):
        log_vars = model.train_step(data, wrapper)
        losses.append({k: float(v.detach()) for k, v in log_vars.items()})
    result = dict(family=family, amp=dtype, wrapper=type(wrapper).__name__,
                  config=FAMILIES[family], img_size=img_size,
                  batch_size=batch_size, steps=steps, losses=losses,
                  loss_scale=(float(wrapper.loss_scaler.get_scale())
                              if getattr(wrapper, 'loss_scaler', None) else None))
    if 'loss_fourier' in losses[-1]:
        result.update(fourier=losses[-1]['loss_fourier'], fourier_source='head')
    else:  # no Fourier term in this row: probe the focal Fourier loss under the same autocast
        fft = MODELS.build(dict(type='FocalFrequencyLoss'))
        batch = model.data_preprocessor(data, True)
        mask = torch.stack([s.mask for s in batch['data_samples']])
        with torch.no_grad(), wrapper.optim_context(model):
            pred = model.reconstruct(batch['inputs'], mask)['pred']
            result.update(fourier=float(fft(pred, batch['inputs'])), fourier_source='probe',
                          pred_dtype=str(pred.dtype))
    result['finite'] = all(math.isfinite(v) for d in losses for v in d.values()) and \
        math.isfinite(result['fourier'])
    result['peak_mib'] = (torch.cuda.max_memory_allocated(device) / 2**20
                          if device.type == 'cuda' else None)
    del model, wrapper
    if device.type == 'cuda':
        torch.cuda.empty_cache()
    return result


def markdown(report: dict) -> str:
    lines = [f"# GPU check: {report['machine']}", '',
             f"torch {report['torch']}, command `{report['command']}`, "
             f"{report['wall_s']:.0f} s", '', '## AMP steps (AmpOptimWrapper)', '',
             '| family | amp | px | batch | loss_spatial | Fourier term | source | finite | '
             'peak MiB |', '|---|---|---|---|---|---|---|---|---|']
    for r in report['amp']:
        peak = 'n/a' if r['peak_mib'] is None else f"{r['peak_mib']:.0f}"
        lines.append(f"| {r['family']} | {r['amp']} | {r['img_size']} | {r['batch_size']} | "
                     f"{r['losses'][-1]['loss_spatial']:.4f} | {r['fourier']:.4g} | "
                     f"{r['fourier_source']} | {r['finite']} | {peak} |")
    lines += ['', '## Peers (one process, alternating steps)', '',
              peers.markdown_table(report['peers']) if report['peers'] else '(none)']
    if report['skipped']:
        lines += ['', 'Skipped (time budget): ' + ', '.join(report['skipped'])]
    return '\n'.join(lines) + '\n'


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--device', choices=['cuda', 'cpu'], default='cuda')
    parser.add_argument('--out-dir', default='bench/results/gpu_check')
    parser.add_argument('--batch-size', type=int, default=None,
                        help='AMP and peer batch (default 64 on CUDA, 2 on CPU)')
    parser.add_argument('--amp-steps', type=int, default=3)
    parser.add_argument('--peer-groups', default=None,
                        help='groups of the peer table (default all on CUDA, r50 on CPU)')
    parser.add_argument('--compile-groups', default=None,
                        help='groups whose A2MIM entry is also compiled (default r50,vit_b '
                             'on CUDA, r50 on CPU)')
    parser.add_argument('--compile-backend', default=None,
                        help="default 'inductor' on CUDA, 'eager' on CPU")
    parser.add_argument('--steps', type=int, default=None, help='timed peer steps')
    parser.add_argument('--budget-s', type=float, default=450.,
                        help='skip parts that would start after this many seconds')
    args = parser.parse_args(argv)
    start = time.perf_counter()
    peers.setup()
    cuda = args.device == 'cuda'
    if cuda and not torch.cuda.is_available():
        raise SystemExit('--device cuda asked for, but CUDA is not available '
                         '(use --device cpu for the tiny CPU form).')
    device = torch.device(args.device)
    batch = args.batch_size or (64 if cuda else 2)
    groups = (args.peer_groups or (','.join(peers.GROUPS) if cuda else 'r50')).split(',')
    compile_groups = (args.compile_groups or ('r50,vit_b' if cuda else 'r50')).split(',')
    backend = args.compile_backend or ('inductor' if cuda else 'eager')
    steps = args.steps or (5 if cuda else 1)
    machine = torch.cuda.get_device_name(device) if cuda else \
        f'{platform.machine()} CPU, {torch.get_num_threads()} threads'
    report = dict(machine=machine, torch=torch.__version__, command=' '.join(sys.argv),
                  device=args.device, amp=[], peers=[], skipped=[])

    def over_budget(what: str) -> bool:
        if time.perf_counter() - start > args.budget_s:
            report['skipped'].append(what)
            return True
        return False

    for family in FAMILIES:
        size = peers.FULL_SIZE[family] if cuda else 64
        for dtype in ('fp16', 'bf16'):
            if over_budget(f'amp {family} {dtype}'):
                continue
            report['amp'].append(amp_check(family, dtype, img_size=size, batch_size=batch,
                                           steps=args.amp_steps, device=device,
                                           tiny=not cuda))
            print(f"amp {family} {dtype}: {report['amp'][-1]['losses'][-1]}", flush=True)
    for group in groups:
        if over_budget(f'peers {group}'):
            continue
        size = peers.FULL_SIZE[group] if cuda else 64
        rows = peers.bench_group(group, img_size=size, batch_size=batch,
                                 amp='bf16' if cuda else 'none', device=device,
                                 compile_modes=[False], compile_backend=backend, steps=steps,
                                 warmup=2 if cuda else 1)
        if group in compile_groups and not over_budget(f'compile {group}'):
            rows += peers.bench_group(group, img_size=size, batch_size=batch,
                                      amp='bf16' if cuda else 'none', device=device,
                                      compile_modes=[True], compile_backend=backend,
                                      steps=steps, warmup=3 if cuda else 2, names=['A2MIM'])
            eager = next(r for r in rows if r['name'] == 'A2MIM' and not r['compiled'])
            for r in rows:
                r['time_vs_a2mim_eager'] = r['step_s'] / eager['step_s']
        report['peers'] += rows
        print(peers.markdown_table(rows), flush=True)
    report['wall_s'] = time.perf_counter() - start
    out = Path(args.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / 'gpu_check.json').write_text(json.dumps(report, indent=1))
    (out / 'gpu_check.md').write_text(markdown(report))
    print(f"wrote {out / 'gpu_check.json'} and {out / 'gpu_check.md'} "
          f"({report['wall_s']:.0f} s)")
    return report


if __name__ == '__main__':
    main()
