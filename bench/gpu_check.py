"""One run on one GPU that checks the plugin and decides its fast paths.

1. AMP: for each family (ResNet-50, ConvNeXt-S, ViT-B, Swin-B; the shipped A2MIM configs) a few
   ``train_step`` calls through ``AmpOptimWrapper`` in fp16 and in bf16; every loss term must be
   finite, including the Fourier term (ConvNeXt-S has none in its official row: there the
   focal Fourier loss of its reconstruction is evaluated under the same autocast as a probe).
2. Switches: for each family at 224 px (Swin 192) in bf16, the A2MIM step eager against
   compiled (``torch.compile(model.train_step)``, the runner's ``compile=True``) and against
   each fast path that applies (``sdpa_attention`` for ViT / Swin, ``channels_last`` for the
   CNNs, ``fused_adamw`` for all), stepped alternately in one process, with the peak memory;
   a switch is marked 'turn on' when it is at least 3 % faster than the eager default without
   more than 10 % extra peak memory. The compiled entry gets one more warm-up step: mmengine's
   ``OptimWrapper._inner_count`` fails a dynamo guard on the second call and ``train_step`` is
   compiled once more.
3. Data: the shipped pipeline's images/s per worker (one thread; decode and crop-resize
   backends) on the bundled photos, a 2-worker DataLoader with and without ``pin_memory``
   copying to the device, and the workers per GPU each family needs for its images/s.
4. Peers: the table of ``bench_peers.py`` (A2MIM, SimMIM, SparK, MAE, MixMIM, MMPretrain
   SimMIM), eager, bf16.

Everything goes to ``<out-dir>/gpu_check.json`` and ``<out-dir>/gpu_check.md``. A part that
would run past ``--budget-s`` is skipped and recorded as skipped. ``--device cpu`` runs the same
code on tiny models (the CI test runs it that way)::

    bash bench/gpu_check.sh                      # GPU, at most 8 minutes (timeout)
    python bench/gpu_check.py --device cpu --out-dir /tmp/gpu_check
"""
import argparse
import json
import math
import platform
import sys
import tempfile
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


# family -> the fast paths that apply to it (besides compile)
SWITCHES = {'r50': ('channels_last', 'fused_adamw'),
            'convnext_s': ('channels_last', 'fused_adamw'),
            'vit_b': ('sdpa_attention', 'fused_adamw'),
            'swin_b': ('sdpa_attention', 'fused_adamw')}
# switch -> how a config turns it on
SWITCH_OPTION = {'compile': 'compile=True',
                 'sdpa_attention': 'default_hooks.fast_paths.sdpa_attention=True',
                 'channels_last': 'default_hooks.fast_paths.channels_last=True',
                 'fused_adamw': 'optim_wrapper.optimizer.fused=True'}
MIN_SPEEDUP = 1.03  # 'turn on' needs >= 3 % less step time ...
MAX_MEMORY = 1.10  # ... and <= 10 % more peak memory than the eager default


def decide(row: dict, base: dict) -> str:
    """'turn on' or 'keep off' for one switch row against the eager default row."""
    memory_ok = row['peak_mib'] is None or base['peak_mib'] is None or \
        row['peak_mib'] <= MAX_MEMORY * base['peak_mib']
    finite = all(math.isfinite(v) for v in row['losses'].values())
    return 'turn on' if finite and memory_ok and row['speedup'] >= MIN_SPEEDUP else 'keep off'


def switch_check(family: str, *, img_size: int, batch_size: int, amp: str,
                 device: torch.device, tiny: bool, compiled: bool, backend: str, steps: int,
                 warmup: int) -> List[dict]:
    """The A2MIM step of ``family``: eager default, compiled, and each fast path alone."""
    variants = [('default', False, ())]
    if compiled:
        variants.append(('compile', True, ()))
    variants += [(switch, False, (switch, )) for switch in SWITCHES[family]]
    entries = [peers.build_entry(family, 'A2MIM', FAMILIES[family], img_size=img_size,
                                 batch_size=batch_size, amp=amp, device=device,
                                 compiled=on, compile_backend=backend, fast_paths=paths,
                                 override=TINY[family] if tiny else None)
               for _, on, paths in variants]
    rows = peers.step_alternately(entries, device=device, steps=steps, warmup=warmup)
    del entries
    if device.type == 'cuda':
        torch.cuda.empty_cache()
    base = rows[0]
    for (switch, _, _), row in zip(variants, rows):
        row.update(family=family, switch=switch, option=SWITCH_OPTION.get(switch, '-'),
                   speedup=base['step_s'] / row['step_s'],
                   memory_ratio=(row['peak_mib'] / base['peak_mib']
                                 if row['peak_mib'] and base['peak_mib'] else None))
        row['decision'] = '-' if switch == 'default' else decide(row, base)
    return rows


def data_check(device: torch.device, *, photos: int, photo_px: int, batch_size: int,
               root: Path) -> dict:
    """Images/s per worker of the shipped pipeline and two DataLoaders feeding ``device``."""
    import bench_pipeline
    from a2mim_plugin.datasets import make_demo_imagenet
    from a2mim_plugin.datasets.demo_data import DEMO_PHOTOS
    per_photo = max(1, photos // len(DEMO_PHOTOS))
    data_root = make_demo_imagenet(root / f'{photo_px}px_{per_photo}',
                                   crops_per_photo=per_photo, crop_size=photo_px)
    files = sorted(str(p) for p in (data_root / 'train').glob('*/*.JPEG'))
    base = bench_pipeline.shipped_pipeline()
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # one worker = one core
    try:
        workers = []
        for decode in bench_pipeline.backends_available():
            for resize in ('pillow', 'cv2'):
                rate = bench_pipeline.per_worker(
                    files, bench_pipeline.with_backends(base, decode, resize), batch_size,
                    repeats=1)
                workers.append(dict(decode=decode, resize=resize,
                                    shipped=(decode, resize) == ('cv2', 'pillow'),
                                    images_per_s=rate['images_per_s']))
    finally:
        torch.set_num_threads(threads)
    loaders = [dict(workers=2, pin_memory=pin, images_per_s=bench_pipeline.dataloader_rate(
        data_root, base, batch_size, 2, pin, True, epochs=2, device=device))
        for pin in (False, True)]
    return dict(photos=len(files), photo_px=photo_px, per_worker=workers, dataloader=loaders)


def amp_check(family: str, dtype: str, *, img_size: int, batch_size: int, steps: int,
              device: torch.device, tiny: bool) -> dict:
    """``steps`` AMP train steps of one family; the loss terms of the last one."""
    from mmpretrain.registry import MODELS
    cfg = peers.load_config(FAMILIES[family], img_size)
    if tiny:
        cfg.model = peers.merged(cfg.model.to_dict(), TINY[family])
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
             f"{report['wall_s']:.0f} s", '', '## Which switch to turn on', '',
             '| family | switch | config option | ms/step | img/s | speedup vs eager default | '
             'peak MiB | peak vs default | loss (last step) | decision |',
             '|---|---|---|---|---|---|---|---|---|---|']
    for r in report['switches']:
        peak = 'n/a' if r['peak_mib'] is None else f"{r['peak_mib']:.0f}"
        memory = 'n/a' if r['memory_ratio'] is None else f"{r['memory_ratio']:.2f}"
        lines.append(f"| {r['family']} | {r['switch']} | `{r['option']}` | "
                     f"{r['step_s'] * 1e3:.1f} | {r['images_per_s']:.1f} | {r['speedup']:.2f} | "
                     f"{peak} | {memory} | {r['losses']['loss']:.4f} | {r['decision']} |")
    turn_on = [f"{r['family']}: `{r['option']}`" for r in report['switches']
               if r['decision'] == 'turn on']
    lines += ['', 'Turn on: ' + ('; '.join(turn_on) if turn_on else 'none'), '',
              f'(rule: at least {MIN_SPEEDUP - 1:.0%} faster than the eager default, at most '
              f'{MAX_MEMORY - 1:.0%} more peak memory, finite losses)']
    data = report['data']
    if data:
        lines += ['', '## Data pipeline against the model', '',
                  f"{data['photos']} JPEGs of {data['photo_px']} px (bundled photos), one "
                  'thread per worker.', '', '| decode | crop-resize | img/s per worker |',
                  '|---|---|---|']
        lines += [f"| {w['decode']} | {w['resize']}{' (shipped)' if w['shipped'] else ''} | "
                  f"{w['images_per_s']:.0f} |" for w in data['per_worker']]
        lines += ['', '| DataLoader workers | pin_memory | img/s to the device |',
                  '|---|---|---|']
        lines += [f"| {d['workers']} | {d['pin_memory']} | {d['images_per_s']:.0f} |"
                  for d in data['dataloader']]
        lines += ['', '| family | model img/s (fastest row) | workers needed (shipped '
                  'pipeline) | configs start |', '|---|---|---|---|']
        lines += [f"| {n['family']} | {n['model_images_per_s']:.0f} | "
                  f"{n['workers_needed']:.1f} | {n['configured_workers']} |"
                  for n in data['needs']]
    lines += ['', '## AMP steps (AmpOptimWrapper)', '',
              '| family | amp | px | batch | loss_spatial | Fourier term | source | finite | '
              'peak MiB |', '|---|---|---|---|---|---|---|---|---|']
    for r in report['amp']:
        peak = 'n/a' if r['peak_mib'] is None else f"{r['peak_mib']:.0f}"
        lines.append(f"| {r['family']} | {r['amp']} | {r['img_size']} | {r['batch_size']} | "
                     f"{r['losses'][-1]['loss_spatial']:.4f} | {r['fourier']:.4g} | "
                     f"{r['fourier_source']} | {r['finite']} | {peak} |")
    lines += ['', '## Peers (one process, alternating steps, eager)', '',
              peers.markdown_table(report['peers']) if report['peers'] else '(none)']
    if report['skipped']:
        lines += ['', 'Skipped (time budget): ' + ', '.join(report['skipped'])]
    return '\n'.join(lines) + '\n'


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--device', choices=['cuda', 'cpu'], default='cuda')
    parser.add_argument('--out-dir', default='bench/results/gpu_check')
    parser.add_argument('--batch-size', type=int, default=None,
                        help='batch of every part (default 64 on CUDA, 2 on CPU)')
    parser.add_argument('--amp-steps', type=int, default=3)
    parser.add_argument('--peer-groups', default=None,
                        help='groups of the peer table (default all on CUDA, r50 on CPU)')
    parser.add_argument('--compile-families', default=None,
                        help='families whose compiled step is measured (default all on CUDA, '
                             'r50 on CPU)')
    parser.add_argument('--compile-backend', default=None,
                        help="default 'inductor' on CUDA, 'eager' on CPU")
    parser.add_argument('--steps', type=int, default=None, help='timed steps per entry')
    parser.add_argument('--photos', type=int, default=None,
                        help='JPEGs of the data part (default 56 on CUDA, 14 on CPU)')
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
    compile_families = (args.compile_families or (','.join(FAMILIES) if cuda else 'r50')
                        ).split(',')
    backend = args.compile_backend or ('inductor' if cuda else 'eager')
    steps = args.steps or (5 if cuda else 1)
    amp = 'bf16' if cuda else 'none'
    machine = torch.cuda.get_device_name(device) if cuda else \
        f'{platform.machine()} CPU, {torch.get_num_threads()} threads'
    report = dict(machine=machine, torch=torch.__version__, command=' '.join(sys.argv),
                  device=args.device, amp=[], switches=[], data=None, peers=[], skipped=[])

    def over_budget(what: str) -> bool:
        if time.perf_counter() - start > args.budget_s:
            report['skipped'].append(what)
            return True
        return False

    def size(family: str) -> int:
        return peers.FULL_SIZE[family] if cuda else 64

    for family in FAMILIES:
        for dtype in ('fp16', 'bf16'):
            if over_budget(f'amp {family} {dtype}'):
                continue
            report['amp'].append(amp_check(family, dtype, img_size=size(family),
                                           batch_size=batch, steps=args.amp_steps,
                                           device=device, tiny=not cuda))
            print(f"amp {family} {dtype}: {report['amp'][-1]['losses'][-1]}", flush=True)
    for family in FAMILIES:
        if over_budget(f'switches {family}'):
            continue
        rows = switch_check(family, img_size=size(family), batch_size=batch, amp=amp,
                            device=device, tiny=not cuda,
                            compiled=family in compile_families, backend=backend,
                            steps=steps, warmup=3 if cuda else 2)
        report['switches'] += rows
        print('\n'.join(f"switch {r['family']} {r['switch']}: {r['step_s'] * 1e3:.1f} ms, "
                        f"x{r['speedup']:.2f}, {r['decision']}" for r in rows), flush=True)
    if not over_budget('data'):
        from mmengine.config import Config
        data = data_check(device, photos=args.photos or (56 if cuda else 14),
                          photo_px=500 if cuda else 160, batch_size=batch,
                          root=Path(tempfile.mkdtemp(prefix='gpu_check_photos_')))
        shipped = next(w for w in data['per_worker'] if w['shipped'])['images_per_s']
        data['needs'] = []
        for family in FAMILIES:
            rows = [r for r in report['switches'] if r['family'] == family]
            if rows:
                fastest = max(r['images_per_s'] for r in rows)
                workers = Config.fromfile(FAMILIES[family]).train_dataloader.num_workers
                data['needs'].append(dict(family=family, model_images_per_s=fastest,
                                          workers_needed=fastest / shipped,
                                          configured_workers=workers))
        report['data'] = data
        print(f"data: {shipped:.0f} img/s per worker (shipped pipeline)", flush=True)
    for group in groups:
        if over_budget(f'peers {group}'):
            continue
        rows = peers.bench_group(group, img_size=size(group), batch_size=batch, amp=amp,
                                 device=device, compile_modes=[False], compile_backend=backend,
                                 steps=steps, warmup=2 if cuda else 1)
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
