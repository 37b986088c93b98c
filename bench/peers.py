"""Training steps of the plugin's A2MIM / SimMIM configs and MMPretrain's own MIM algorithms,
built from their shipped config files and timed side by side.

Every entry is a shipped config (``configs/...`` or ``mmpretrain::...``) built as the runner
builds it: its model with its data preprocessor and its optimizer (wrapped in ``OptimWrapper``
or, with AMP, ``AmpOptimWrapper``); one step is ``model.train_step(data, optim_wrapper)``
(preprocess, forward, loss, backward, optimizer step). "Compiled" is what mmengine's runner does
for ``compile=True``: ``torch.compile(model.train_step)``.
"""
import copy
from contextlib import contextmanager
from functools import partial
import gc
import math
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch

MMPRETRAIN = 'mmpretrain::'
# group -> [(entry name, config)]; the first entry of a group is the plugin's A2MIM (the
# reference of the ratios).
GROUPS: Dict[str, List[tuple]] = {
    'r50': [
        ('A2MIM', 'configs/a2mim/a2mim_resnet50_8xb256-coslr-300e_in1k.py'),
        ('SimMIM (plugin)',
         'configs/simmim_baselines/a2mim-simmim_resnet50_8xb256-amp-coslr-300e_in1k.py'),
        ('SparK (MMPretrain)',
         MMPRETRAIN + 'spark/spark_sparse-resnet50_8xb512-amp-coslr-800e_in1k.py'),
    ],
    'convnext_s': [
        ('A2MIM', 'configs/a2mim/a2mim_convnext-small_8xb256-amp-coslr-300e_in1k.py'),
        ('SimMIM (plugin)',
         'configs/simmim_baselines/a2mim-simmim_convnext-small_8xb256-amp-coslr-300e_in1k.py'),
    ],
    'vit_b': [
        ('A2MIM', 'configs/a2mim/a2mim_vit-base-p16_8xb128-accu2-step-800e_in1k.py'),
        ('SimMIM (plugin)',
         'configs/simmim_baselines/a2mim-simmim_vit-base-p16_8xb128-accu2-step-800e_in1k.py'),
        ('MAE (MMPretrain)', MMPRETRAIN + 'mae/mae_vit-base-p16_8xb512-amp-coslr-300e_in1k.py'),
    ],
    'swin_b': [
        ('A2MIM', 'configs/a2mim/a2mim_swin-base-w6_8xb128-accu2-coslr-100e_in1k-192px.py'),
        ('SimMIM (plugin)',
         'configs/simmim_baselines/'
         'a2mim-simmim_swin-base-w6_8xb128-accu2-coslr-100e_in1k-192px.py'),
        ('SimMIM (MMPretrain)',
         MMPRETRAIN + 'simmim/simmim_swin-base-w6_8xb256-amp-coslr-100e_in1k-192px.py'),
        # MixMAE (CVPR 2023) as MMPretrain's MixMIM: Swin-B shapes (128-d, 2-2-18-2 blocks),
        # two images mixed at mask ratio 0.5 on the stride-32 grid, 8-block 512-d decoder
        ('MixMIM (MMPretrain)',
         MMPRETRAIN + 'mixmim/mixmim_mixmim-base_16xb128-coslr-300e_in1k.py'),
    ],
}
# The input size each group is trained at (Swin-B w6 at 192 px, as its configs).
FULL_SIZE = {'r50': 224, 'convnext_s': 224, 'vit_b': 224, 'swin_b': 192}
MASK_PATCH = 32  # px; every input size must be a multiple of it (SimMIM / A2MIM masks)
# The optional fast paths (off in every shipped config; bench/gpu_check.py measures them).
FAST_PATHS = ('sdpa_attention', 'channels_last', 'fused_adamw')


def load_config(path: str, img_size: int):
    """The config at ``path`` with its model and mask generator set to ``img_size`` px."""
    from mmengine.config import Config
    if path.startswith(MMPRETRAIN):  # a config packaged with MMPretrain
        import mmpretrain
        path = str(Path(mmpretrain.__file__).parent / '.mim' / 'configs' /
                   path[len(MMPRETRAIN):])
    cfg = Config.fromfile(path)
    if img_size % MASK_PATCH:
        raise ValueError(f'input size {img_size} must be a multiple of the {MASK_PATCH}-px '
                         'mask patch')
    model = cfg.model
    backbone = model.backbone
    if 'img_size' in backbone or any(k in backbone.type for k in ('ViT', 'Swin')):
        backbone.img_size = img_size
    if model.type == 'SparK':
        model.input_size = img_size
    if model.type == 'MAE':  # its decoder's position embedding has one entry per patch
        model.neck.num_patches = (img_size // model.neck.patch_size) ** 2
    if model.type == 'MixMIM':  # no padding: each stage's window must divide its grid
        backbone.img_size = img_size
        backbone.window_size = mixmim_windows(img_size, backbone.get('window_size',
                                                                     [14, 14, 14, 7]))
        model.neck.num_patches = (img_size // model.neck.encoder_stride) ** 2
    for t in cfg.train_dataloader.dataset.pipeline:
        if t['type'] == 'SimMIMMaskGenerator':
            t['input_size'] = img_size
    return cfg


def mixmim_windows(img_size: int, windows: Sequence[int]) -> List[int]:
    """MixMIM's window per stage at ``img_size`` px: the largest divisor of the stage's grid
    (stride 4, 8, 16, 32) not above the configured window (224 px: 14, 14, 14, 7 unchanged;
    192 px: 12, 12, 12, 6)."""
    grids = [img_size // (4 * 2**i) for i in range(len(windows))]
    return [max(d for d in range(1, min(w, g) + 1) if g % d == 0)
            for w, g in zip(windows, grids)]


def mask_generator(cfg):
    """The config's ``SimMIMMaskGenerator`` transform (None for MAE / SparK, which mask
    inside the model)."""
    from mmpretrain.registry import TRANSFORMS
    for t in cfg.train_dataloader.dataset.pipeline:
        if t['type'] == 'SimMIMMaskGenerator':
            return TRANSFORMS.build(copy.deepcopy(t))
    return None


def synthetic_batch(cfg, batch_size: int, img_size: int, seed: int) -> dict:
    """A data batch as the dataloader gives it: uint8 images (the same for every config with
    the same seed) and data samples with the config's own mask, if it has one."""
    from mmpretrain.structures import DataSample
    gen = torch.Generator().manual_seed(seed)
    images = torch.randint(0, 256, (batch_size, 3, img_size, img_size), generator=gen,
                           dtype=torch.uint8)
    masker = mask_generator(cfg)
    np.random.seed(seed)  # SimMIMMaskGenerator draws with numpy
    samples = []
    for _ in range(batch_size):
        sample = DataSample()
        if masker is not None:
            sample.set_mask(torch.from_numpy(masker.transform({})['mask']))
        samples.append(sample)
    return dict(inputs=images, data_samples=samples)  # as default_collate stacks them


def build_optim_wrapper(model: torch.nn.Module, cfg, amp: str,
                        device: torch.device = torch.device('cuda')):
    """The config's optimizer (and paramwise settings) in ``OptimWrapper`` or, for 'fp16' /
    'bf16', ``AmpOptimWrapper``; no gradient accumulation (one step = one update).

    On the CPU (the tiny form of the checks) mmengine refuses ``AmpOptimWrapper`` (its
    constructor asserts a GPU) and its autocast allows bf16 only: the wrapper is then built with
    that check bypassed and steps under ``torch.autocast('cpu', dtype)``; its GradScaler is the
    CUDA one, inactive on the CPU (scale 1)."""
    from mmengine.optim import build_optim_wrapper as build
    # A plain dict: with a ConfigDict (what the runner passes) and a paramwise_cfg, the
    # param groups are ConfigDicts, and torch 2.14's dynamo fails tracing the optimizer step
    # of a compiled train_step (InternalTorchDynamoError in _dynamo/variables/optimizer.py).
    wrapper = copy.deepcopy(cfg.optim_wrapper).to_dict()
    wrapper.pop('accumulative_counts', None)
    wrapper.pop('loss_scale', None)
    wrapper.pop('dtype', None)
    if amp == 'none':
        wrapper['type'] = 'OptimWrapper'
    else:
        wrapper['type'] = 'AmpOptimWrapper'
        wrapper['dtype'] = {'fp16': 'float16', 'bf16': 'bfloat16'}[amp]
        if amp == 'fp16':
            wrapper['loss_scale'] = 'dynamic'
    if device.type != 'cpu' or amp == 'none':
        return build(model, wrapper)
    from unittest import mock
    with mock.patch('mmengine.optim.optimizer.amp_optimizer_wrapper.is_cuda_available',
                    return_value=True):
        optim_wrapper = build(model, wrapper)
    optim_wrapper.optim_context = partial(cpu_amp_context, optim_wrapper)
    return optim_wrapper


@contextmanager
def cpu_amp_context(optim_wrapper, model: torch.nn.Module):
    """``AmpOptimWrapper.optim_context`` with CPU autocast in the wrapper's dtype."""
    from mmengine.optim import OptimWrapper
    with OptimWrapper.optim_context(optim_wrapper, model), \
            torch.autocast('cpu', dtype=optim_wrapper.cast_dtype):
        yield


def sync(device: torch.device) -> None:
    if device.type == 'cuda':
        torch.cuda.synchronize(device)


def resident_mib(model: torch.nn.Module, optim_wrapper) -> float:
    """Parameters, gradients and optimizer state of one entry, in MiB."""
    total = sum(p.numel() * p.element_size() * (2 if p.requires_grad else 1)
                for p in model.parameters())
    for state in optim_wrapper.optimizer.state.values():
        total += sum(v.numel() * v.element_size() for v in state.values()
                     if isinstance(v, torch.Tensor))
    return total / 2**20


@dataclass
class Entry:
    """One config built for stepping."""

    group: str
    name: str
    config: str
    compiled: bool
    model: torch.nn.Module
    optim_wrapper: object
    step_fn: object
    data: dict
    fast_paths: Tuple[str, ...] = ()
    amp: str = 'none'
    times: List[float] = field(default_factory=list)
    losses: List[Dict[str, float]] = field(default_factory=list)
    peak_mib: Optional[float] = None
    first_steps_s: List[float] = field(default_factory=list)

    @property
    def label(self) -> str:
        extras = ''.join(f' +{p}' for p in self.fast_paths)
        return f"{self.name}{' +compile' if self.compiled else ''}{extras}"


def merged(base: dict, override: dict) -> dict:
    """``base`` with ``override`` merged in (dicts into dicts; anything else replaced)."""
    out = copy.deepcopy(base)
    for key, value in override.items():
        out[key] = merged(out[key], value) if isinstance(value, dict) and isinstance(
            out.get(key), dict) else copy.deepcopy(value)
    return out


def build_entry(group: str, name: str, config: str, *, img_size: int, batch_size: int,
                amp: str, device: torch.device, compiled: bool, compile_backend: str,
                seed: int = 0, override: Optional[dict] = None,
                fast_paths: Sequence[str] = ()) -> Entry:
    """Build one config's model (``override`` merged into ``cfg.model``), optimizer wrapper,
    (compiled) train step and batch.

    The model gets what the runner's ``CompileReadyHook`` does before compiling (every shipped
    config has it), and the ``fast_paths`` asked for: 'sdpa_attention', 'channels_last' (as
    ``FastPathsHook``) or 'fused_adamw' (``optim_wrapper.optimizer.fused=True``)."""
    from mmpretrain.registry import MODELS

    from a2mim_plugin.models.utils.compile_ready import python_scalar_attributes
    from a2mim_plugin.models.utils.fast_paths import use_channels_last, use_sdpa_attention
    cfg = load_config(config, img_size)
    if override:
        cfg.model = merged(cfg.model.to_dict(), override)
    torch.manual_seed(seed)
    model = MODELS.build(cfg.model)
    model.init_weights()
    model.to(device).train()
    python_scalar_attributes(model)
    unknown = set(fast_paths) - set(FAST_PATHS)
    if unknown:
        raise ValueError(f'unknown fast paths {sorted(unknown)}; choose from {FAST_PATHS}')
    if 'sdpa_attention' in fast_paths and not use_sdpa_attention(model):
        raise ValueError(f'{name}: sdpa_attention asked for, but it has no BEiT / Swin attention')
    if 'channels_last' in fast_paths:
        use_channels_last(model)
    if 'fused_adamw' in fast_paths:
        cfg.optim_wrapper.optimizer.fused = True
    optim_wrapper = build_optim_wrapper(model, cfg, amp, device)
    step_fn = model.train_step
    if compiled:
        step_fn = torch.compile(step_fn, backend=compile_backend)
    data = synthetic_batch(cfg, batch_size, img_size, seed)
    return Entry(group, name, config, compiled, model, optim_wrapper, step_fn, data,
                 tuple(fast_paths), amp)


def run_step(entry: Entry, device: torch.device, record: bool) -> None:
    """One timed step; CUDA peak memory of the step on top of what is resident before it,
    plus this entry's own parameters, gradients and optimizer state."""
    if device.type == 'cuda':
        torch.cuda.reset_peak_memory_stats(device)
        before = torch.cuda.memory_allocated(device)
    sync(device)
    start = time.perf_counter()
    log_vars = entry.step_fn(entry.data, entry.optim_wrapper)
    sync(device)
    elapsed = time.perf_counter() - start
    values = {k: float(v.detach()) for k, v in log_vars.items()}
    if not all(math.isfinite(v) for v in values.values()):
        raise RuntimeError(f'{entry.group} {entry.label}: non-finite loss {values}')
    if record:
        entry.times.append(elapsed)
        entry.losses.append(values)
        if device.type == 'cuda':
            step_peak = (torch.cuda.max_memory_allocated(device) - before) / 2**20
            peak = step_peak + resident_mib(entry.model, entry.optim_wrapper)
            entry.peak_mib = max(entry.peak_mib or 0., peak)


def step_alternately(entries: Sequence[Entry], *, device: torch.device, steps: int,
                     warmup: int, log=print) -> List[dict]:
    """Step ``entries`` in turn (the order rotates every step, so that all see the same machine
    load), ``warmup`` untimed rounds then ``steps`` timed ones; one summary row per entry (median
    step time; the first two steps' times, where a compiled step traces and compiles)."""
    for i in range(warmup + steps):
        shift = i % len(entries)
        for entry in entries[shift:] + entries[:shift]:
            t0 = time.perf_counter()
            run_step(entry, device, record=i >= warmup)
            if i < 2:
                entry.first_steps_s.append(time.perf_counter() - t0)
            if i == 0:
                log(f'  {entry.group} {entry.label}: first step {entry.first_steps_s[0]:.1f} s')
    rows = []
    for entry in entries:
        median = statistics.median(entry.times)
        batch_size = len(entry.data['data_samples'])
        rows.append(dict(group=entry.group, name=entry.name, compiled=entry.compiled,
                         fast_paths=list(entry.fast_paths), config=entry.config,
                         img_size=entry.data['inputs'].shape[-1], batch_size=batch_size,
                         amp=entry.amp,
                         step_s=median, images_per_s=batch_size / median,
                         first_steps_s=entry.first_steps_s, peak_mib=entry.peak_mib,
                         losses=entry.losses[-1]))
    return rows


def bench_group(group: str, *, img_size: int, batch_size: int, amp: str,
                device: torch.device, compile_modes: Sequence[bool], compile_backend: str,
                steps: int, warmup: int, names: Optional[Sequence[str]] = None,
                log=print) -> List[dict]:
    """Build every entry of ``group`` (each compile mode), step them alternately (the order
    rotates every step, so that all see the same machine load) and summarise."""
    entries = []
    for name, config in GROUPS[group]:
        if names is not None and name not in names:
            continue
        for compiled in compile_modes:
            entries.append(build_entry(group, name, config, img_size=img_size,
                                       batch_size=batch_size, amp=amp, device=device,
                                       compiled=compiled, compile_backend=compile_backend))
    rows = step_alternately(entries, device=device, steps=steps, warmup=warmup, log=log)
    reference = {r['compiled']: r['step_s'] for r in rows if r['name'] == 'A2MIM'}
    eager_ref = reference.get(False)
    for row in rows:
        ref = reference.get(row['compiled'])
        row['time_vs_a2mim'] = row['step_s'] / ref if ref else None
        row['time_vs_a2mim_eager'] = row['step_s'] / eager_ref if eager_ref else None
    del entries
    gc.collect()
    if device.type == 'cuda':
        torch.cuda.empty_cache()
    return rows


def markdown_table(rows: Sequence[dict]) -> str:
    """The peer table: step time, images/s, peak memory and ratios to the plugin's A2MIM."""
    lines = ['| group | method | compile | px | batch | ms/step | img/s | peak MiB | '
             'time / A2MIM (same mode) | time / A2MIM eager |',
             '|---|---|---|---|---|---|---|---|---|---|']
    for r in rows:
        def ratio(v):
            return 'n/a' if v is None else f'{v:.2f}'
        peak = 'n/a' if r['peak_mib'] is None else f"{r['peak_mib']:.0f}"
        lines.append(f"| {r['group']} | {r['name']} | {'on' if r['compiled'] else 'off'} | "
                     f"{r['img_size']} | {r['batch_size']} | {r['step_s'] * 1e3:.0f} | "
                     f"{r['images_per_s']:.1f} | {peak} | {ratio(r['time_vs_a2mim'])} | "
                     f"{ratio(r['time_vs_a2mim_eager'])} |")
    return '\n'.join(lines)


def setup() -> None:
    """Register the plugin, set the MMPretrain scope and silence per-parameter init logs."""
    import logging

    import a2mim_plugin  # noqa: F401
    from mmengine.logging import MMLogger
    from mmengine.registry import init_default_scope
    init_default_scope('mmpretrain')
    MMLogger.get_current_instance().setLevel(logging.WARNING)
