"""Time one full A2MIM training step against the SimMIM configuration of the same backbone.

One step = forward + loss + backward + AdamW step. Both configurations use the same backbone,
mask layer, decoder, input size and mask; they differ only in what A2MIM adds:

* A2MIM:  RGB-mean fill of the masked input, additive mask token (+ mask_gamma for CNNs),
          the official head of the row (focal L1 for CNNs, L1 for ViT; Fourier loss with the
          row's weight).
* SimMIM: no fill (``input_fill=None``), replaced token (``replace=True``), L1 on masked pixels,
          no Fourier term.

Rows (official A2MIM ImageNet settings, spec section 5):

* ``r50``        ResNet-50, mask_layer 3 (stride 16), focal L1 + focal FFL lambda 0.5
* ``convnext_s`` ConvNeXt-S, mask_layer 3 (stride 32), focal L1, lambda 0 (as openmixup;
                 ``--fft-weight-override`` turns a Fourier term on for rows without one)
* ``vit_b``      ViT-B/16 (BEiT-style, rel-pos + layer scale), mask_layer 0, L1 + FFL 0.1

Both configurations of a row are built in the same process and stepped alternately (the
order flips every step), so that both see the same machine load; the median time per step over
``--steps`` timed steps (after ``--warmup`` untimed ones) is reported, with the A2MIM / SimMIM
ratio and, on CUDA, the peak allocated memory of each configuration built and stepped alone
(``torch.cuda.max_memory_allocated``). CPU memory is reported as n/a.

Example::

    python bench/bench_step.py --device cuda --batch-size 64 --img-size 224 --amp bf16
    python bench/bench_step.py --device cpu --batch-size 2 --img-size 128 --steps 2 --warmup 1
"""
import argparse
import gc
import logging
import math
import statistics
import sys
import time
from typing import Dict, List, Optional

import torch

ARCHS = ('r50', 'convnext_s', 'vit_b')


def row_settings(arch: str) -> dict:
    """Backbone, decoder and A2MIM head settings of one official row."""
    if arch == 'r50':
        return dict(backbone=dict(type='A2MIMResNet', depth=50, mask_layer=3),
                    cnn=True, patch=16, channels=2048, stride=32,
                    head=dict(loss=dict(type='FocalL1Loss', alpha=0.2, gamma=1.0),
                              fft_weight=0.5, fft_focal=True, fft_unmask_replace='mixed',
                              fft_unmask_weight=1e-3))
    if arch == 'convnext_s':
        return dict(backbone=dict(type='A2MIMConvNeXt', arch='small', mask_layer=3,
                                  drop_path_rate=0.),
                    cnn=True, patch=32, channels=768, stride=32,
                    head=dict(loss=dict(type='FocalL1Loss', alpha=0.2, gamma=1.0),
                              fft_weight=0.))
    if arch == 'vit_b':
        return dict(backbone=dict(type='A2MIMViT', arch='base', mask_layer=0,
                                  drop_path_rate=0.1),
                    cnn=False, patch=16, channels=768, stride=16,
                    head=dict(loss=dict(type='ElementwiseL1Loss'), fft_weight=0.1,
                              fft_focal=True, fft_unmask_replace='mixed'))
    raise ValueError(f'Unknown arch {arch!r}; choose from {ARCHS}.')


def model_config(arch: str, variant: str, img_size: int,
                 fft_weight_override: Optional[float]) -> dict:
    """The A2MIM algorithm config of ``arch`` in the 'a2mim' or 'simmim' variant."""
    row = row_settings(arch)
    backbone = dict(row['backbone'])
    if not row['cnn']:
        backbone['img_size'] = img_size
    if variant == 'a2mim':
        backbone.update(replace=False, mask_init=1e-6 if row['cnn'] else 0.)
        head = dict(type='A2MIMHead', **row['head'])
        if fft_weight_override is not None and head['fft_weight'] == 0:
            head.update(fft_weight=fft_weight_override, fft_focal=True,
                        fft_unmask_replace='mixed')
        input_fill = 'mean'
    elif variant == 'simmim':
        backbone.update(replace=True, mask_init=0.)
        head = dict(type='A2MIMHead', loss=dict(type='ElementwiseL1Loss'), fft_weight=0.)
        input_fill = None
    else:
        raise ValueError(variant)
    return dict(type='A2MIM', backbone=backbone, input_fill=input_fill, head=head,
                neck=dict(type='A2MIMLinearDecoder', in_channels=row['channels'],
                          encoder_stride=row['stride']))


def block_mask(batch: int, img_size: int, model_patch: int, mask_patch: int = 32,
               ratio: float = 0.6, seed: int = 0) -> torch.Tensor:
    """SimMIM/A2MIM block masks: ceil(ratio * blocks) blocks of mask_patch px, on the
    model-patch grid. Returns (B, img/model_patch, img/model_patch) int64."""
    if img_size % mask_patch or mask_patch % model_patch:
        raise SystemExit(f'--img-size {img_size} must be a multiple of the {mask_patch}-px mask '
                         f'patch (itself a multiple of the model patch {model_patch}).')
    gen = torch.Generator().manual_seed(seed)
    blocks = img_size // mask_patch
    count = math.ceil(blocks * blocks * ratio)
    masks = torch.zeros(batch, blocks * blocks, dtype=torch.long)
    for b in range(batch):
        masks[b, torch.randperm(blocks * blocks, generator=gen)[:count]] = 1
    scale = mask_patch // model_patch
    masks = masks.view(batch, blocks, blocks)
    return masks.repeat_interleave(scale, 1).repeat_interleave(scale, 2)


def sync(device: torch.device) -> None:
    if device.type == 'cuda':
        torch.cuda.synchronize(device)


def make_step(cfg: dict, args, device: torch.device, mask: torch.Tensor):
    """Build one configuration; return (model, optimizer, step function)."""
    from mmpretrain.registry import MODELS
    from mmpretrain.structures import DataSample

    torch.manual_seed(0)
    model = MODELS.build(cfg)
    model.init_weights()
    model.to(device).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4, weight_decay=0.05)
    amp_dtype = {'bf16': torch.bfloat16, 'fp16': torch.float16, 'none': None}[args.amp]
    scaler = torch.amp.GradScaler(device.type, enabled=(args.amp == 'fp16'
                                                        and device.type == 'cuda'))
    gen = torch.Generator().manual_seed(1)
    inputs = torch.randn(args.batch_size, 3, args.img_size, args.img_size,
                         generator=gen).to(device)
    samples = [DataSample().set_mask(m) for m in mask.to(device)]

    def step():
        optimizer.zero_grad(set_to_none=True)
        with torch.autocast(device.type, dtype=amp_dtype or torch.float32,
                            enabled=amp_dtype is not None):
            losses = model.loss(inputs, samples)
            loss = sum(losses.values())
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
        return loss.detach()

    return model, optimizer, step


def timed(step, device: torch.device) -> float:
    """Seconds of one synchronised step; fails on a non-finite loss."""
    sync(device)
    start = time.perf_counter()
    loss = step()
    sync(device)
    elapsed = time.perf_counter() - start
    if not torch.isfinite(loss).item():
        raise RuntimeError(f'non-finite loss {loss.item()}')
    return elapsed


def peak_memory_mib(cfg: dict, args, device: torch.device, mask: torch.Tensor) -> float:
    """Peak CUDA memory of one configuration built and stepped alone."""
    gc.collect()
    torch.cuda.empty_cache()
    torch.cuda.reset_peak_memory_stats(device)
    model, optimizer, step = make_step(cfg, args, device, mask)
    for _ in range(max(args.warmup, 2)):
        timed(step, device)
    peak = torch.cuda.max_memory_allocated(device) / 2**20
    del model, optimizer, step
    gc.collect()
    torch.cuda.empty_cache()
    return peak


def bench_row(arch: str, args, device: torch.device) -> Dict[str, dict]:
    """Median step time (both configurations interleaved step by step, so that both see the
    same machine load) and, on CUDA, the peak memory of each configuration alone."""
    row = row_settings(arch)
    mask = block_mask(args.batch_size, args.img_size, row['patch'])
    cfgs = {v: model_config(arch, v, args.img_size, args.fft_weight_override)
            for v in ('simmim', 'a2mim')}
    result = {v: dict(peak_mib=None) for v in cfgs}
    if device.type == 'cuda':
        for variant, cfg in cfgs.items():
            result[variant]['peak_mib'] = peak_memory_mib(cfg, args, device, mask)
    built = {v: make_step(cfg, args, device, mask) for v, cfg in cfgs.items()}
    times: Dict[str, List[float]] = {v: [] for v in cfgs}
    for i in range(args.warmup + args.steps):
        order = list(cfgs) if i % 2 == 0 else list(cfgs)[::-1]
        for variant in order:
            elapsed = timed(built[variant][2], device)
            if i >= args.warmup:
                times[variant].append(elapsed)
    for variant in cfgs:
        result[variant]['median'] = statistics.median(times[variant])
    del built
    gc.collect()
    if device.type == 'cuda':
        torch.cuda.empty_cache()
    return result


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--device', choices=['cpu', 'cuda'], default='cuda')
    parser.add_argument('--batch-size', type=int, default=64)
    parser.add_argument('--img-size', type=int, default=224)
    parser.add_argument('--steps', type=int, default=20, help='timed steps')
    parser.add_argument('--warmup', type=int, default=5, help='untimed steps first')
    parser.add_argument('--amp', choices=['bf16', 'fp16', 'none'], default='none')
    parser.add_argument('--archs', default=','.join(ARCHS),
                        help=f'comma-separated subset of {ARCHS}')
    parser.add_argument('--fft-weight-override', type=float, default=None,
                        help='Fourier weight for rows whose official weight is 0 (ConvNeXt)')
    parser.add_argument('--threads', type=int, default=None, help='CPU intra-op threads')
    args = parser.parse_args(argv)

    import a2mim_plugin  # noqa: F401  (registers the A2MIM modules)
    from mmengine.logging import MMLogger
    from mmengine.registry import init_default_scope
    init_default_scope('mmpretrain')
    MMLogger.get_current_instance().setLevel(logging.WARNING)  # no per-parameter init log

    if args.device == 'cuda' and not torch.cuda.is_available():
        raise SystemExit('--device cuda asked for, but CUDA is not available.')
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    archs = [a.strip() for a in args.archs.split(',') if a.strip()]
    unknown = [a for a in archs if a not in ARCHS]
    if unknown:
        raise SystemExit(f'Unknown --archs {unknown}; choose from {ARCHS}.')

    where = torch.cuda.get_device_name(device) if device.type == 'cuda' else \
        f'CPU, {torch.get_num_threads()} threads'
    print(f'# A2MIM vs SimMIM training step: {where}, torch {torch.__version__}, '
          f'batch {args.batch_size}, {args.img_size} px, amp {args.amp}, '
          f'{args.steps} timed steps after {args.warmup} warm-up')
    print()
    print('| arch | mask layer (grid) | SimMIM ms/step | A2MIM ms/step | A2MIM / SimMIM | '
          'SimMIM peak MiB | A2MIM peak MiB |')
    print('|---|---|---|---|---|---|---|')
    for arch in archs:
        row = row_settings(arch)
        result = bench_row(arch, args, device)
        ratio = result['a2mim']['median'] / result['simmim']['median']

        def mem(r):
            return 'n/a' if r['peak_mib'] is None else f"{r['peak_mib']:.0f}"

        grid = args.img_size // row['patch']
        print(f"| {arch} | {row['backbone']['mask_layer']} ({grid}x{grid}) | "
              f"{result['simmim']['median'] * 1e3:.1f} | {result['a2mim']['median'] * 1e3:.1f} | "
              f"{ratio:.3f} | {mem(result['simmim'])} | {mem(result['a2mim'])} |")
        sys.stdout.flush()


if __name__ == '__main__':
    main()
