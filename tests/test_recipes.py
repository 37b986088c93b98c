"""The recipe table: what every published config trains with, read from the built objects.

One row per config of the published rows (README "Published rows": 19 pre-training and 20
fine-tuning configs), written from the official OpenMixup config each row names (values as in
``../shared/reference/a2mim_official_behaviour.md``, sections 5 and 6). The test builds

* the optimizer wrapper of each config (``build_optim_wrapper``) on the config's own model:
  the ViTs at full size on the ``meta`` device (shapes only), the CNNs on the CPU with narrow
  widths - ResNet ``stem_channels=base_channels=8``, ConvNeXt channels ``[8, 16, 32, 64]``, a
  64-channel decoder / classifier input - and the arch's real depths, so every parameter
  name, and with it every optimizer group, is the full-size model's
  (``test_narrow_models_keep_every_parameter_name`` checks that on the real ResNet-50 and
  ConvNeXt-S); the table's probes are read from its param groups;
* the LR schedulers (``PARAM_SCHEDULERS``), stepped as mmengine's ParamSchedulerHook steps
  them over every epoch (at ``EPOCH_LEN`` iterations each), and compared at every iteration
  with the official mmcv policy written out here;
* every transform of the training pipeline (``TRANSFORMS``) and the hooks (``HOOKS``).

Mixed precision, the per-GPU batch and the epochs come from the config (``AmpOptimWrapper``
needs a GPU to be built; the dataloader and the loop need ImageNet). A value that drifts from
the official recipe fails with the config and the key that drifted.
"""
import copy
import math
import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Dict, List, Optional, Tuple

import pytest
import torch
from mmengine.config import Config
from mmengine.optim import OptimWrapper, build_optim_wrapper
from mmengine.registry import PARAM_SCHEDULERS
from mmpretrain.registry import HOOKS, MODELS, TRANSFORMS

from helpers import REPO_ROOT

CONFIGS = REPO_ROOT / 'configs'
# Iterations per epoch of the schedule check. Every policy is a function of iteration / epoch
# length, so the real lengths (626 to 2503) are not needed; 50 keeps per-epoch and
# per-iteration shapes apart (a per-iteration cosine moves up to 1% within an epoch here) and
# puts mmengine's LinearLR convention (full LR one iteration before the warm-up ends) at
# 1 / (50 x warm-up epochs).
EPOCH_LEN = 50
_LR_CHECKS: Dict[tuple, Tuple[float, List[str]]] = {}
OPENMIXUP = 'openmixup:configs/'


# --------------------------------------------------------------------------------------------
# The official policies (mmcv 1.x LrUpdaterHook semantics, as the official configs use them)
# --------------------------------------------------------------------------------------------
def _annealing_cos(start: float, end: float, factor: float) -> float:
    return end + 0.5 * (start - end) * (math.cos(math.pi * factor) + 1)


@dataclass(frozen=True)
class Schedule:
    """An official ``lr_config``.

    policy: ``'step'`` (x0.1 at ``milestone`` by epoch), ``'stepfix'`` (OpenMixup's
    StepFixCosineAnnealing: per-iteration cosine over the post-warm-up iterations, warm-up
    linear from 0 times that cosine extended backwards), ``'cos_epoch'`` (mmcv CosineAnnealing,
    by_epoch=True) or ``'cos_iter'`` (by_epoch=False); warm-up linear over ``warmup`` epochs
    of iterations from ``ratio`` (mmcv ``warmup_ratio``).
    """

    policy: str
    warmup: int
    ratio: float
    min_lr: float = 0.
    milestone: int = 0

    def lr(self, it: int, base: float, epoch_len: int, epochs: int) -> Tuple[float, float]:
        """The official LR at dataloader iteration ``it`` and the factor by which this
        plugin's warm-up is documented to differ from it (1 outside the warm-up)."""
        total, warm, epoch = epochs * epoch_len, self.warmup * epoch_len, it // epoch_len
        if self.policy == 'step':
            regular = base * (0.1 if epoch >= self.milestone else 1.)
        elif self.policy == 'stepfix':
            regular = _annealing_cos(base, self.min_lr, (it - warm) / (total - warm))
        elif self.policy == 'cos_epoch':
            regular = _annealing_cos(base, self.min_lr, epoch / epochs)
        else:
            regular = _annealing_cos(base, self.min_lr, it / total)
        if it >= warm:
            return regular, 1.
        if self.policy == 'stepfix':
            # The official warm-up multiplies the cosine extended before its start; this plugin
            # warms up to the constant base LR (configs/a2mim/README.md, differences table).
            return regular * it / warm, base / regular
        return regular * (1 - (1 - it / warm) * (1 - self.ratio)), 1.


STEP_800 = Schedule('step', warmup=10, ratio=2e-6, milestone=700)
PRE_COS = Schedule('stepfix', warmup=10, ratio=0., min_lr=1e-5)
VIT_FT = Schedule('stepfix', warmup=20, ratio=0., min_lr=1e-6)
RSB = Schedule('cos_epoch', warmup=5, ratio=1e-5, min_lr=1e-6)
SPARK = Schedule('cos_iter', warmup=5, ratio=1e-5, min_lr=1e-6)


# --------------------------------------------------------------------------------------------
# The table
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Recipe:
    official: str  # the official config (OpenMixup), for the reader
    optimizer: str
    lr: float
    weight_decay: float
    total_batch: int  # images per optimizer step the LR is written for
    batch: int  # per GPU
    accum: int
    epochs: int
    amp: bool
    clip_grad: Optional[float]
    schedule: Schedule
    # probe parameter -> (LR / optimizer LR, weight decay) in the built param groups
    groups: Dict[str, Tuple[float, float]]
    crop: Tuple[int, float, str]  # RandomResizedCrop size, lower scale, interpolation
    mask: Optional[Tuple[int, int, float]] = None  # mask / model patch, mask ratio
    rand_aug: Optional[int] = None  # RandAugment magnitude
    erase: Optional[float] = None  # RandomErasing probability
    ema: Optional[Tuple[float, float, float]] = None  # mmengine momentum, warm-up epochs, ratio


WD, NO = 0.05, 0.


def _vit_pre(algo: str, arch: str, batch: int, accum: int, amp: bool, official: str) -> Recipe:
    last = {'small': 7, 'base': 11, 'large': 23}[arch]
    return Recipe(
        official=f'{OPENMIXUP}selfsup/{algo}/imagenet/{official}', optimizer='AdamW', lr=4e-4,
        weight_decay=WD, total_batch=2048, batch=batch, accum=accum, epochs=800, amp=amp,
        clip_grad=5.0, schedule=STEP_800,
        groups={
            'backbone.patch_embed.projection.weight': (1, WD),
            f'backbone.layers.{last}.attn.qkv.weight': (1, WD),
            'backbone.layers.0.attn.relative_position_bias_table': (1, NO),  # re.search 'bias'
            'backbone.layers.0.attn.q_bias': (1, NO), 'backbone.layers.0.ln1.weight': (1, NO),
            'backbone.layers.0.gamma_1': (1, NO), 'backbone.ln1.weight': (1, NO),
            'backbone.pos_embed': (1, NO), 'backbone.cls_token': (1, NO),
            'backbone.mask_token': (1, NO), 'neck.decoder.0.weight': (1, WD),
            'neck.decoder.0.bias': (1, NO)},
        crop=(224, 0.67, 'bilinear'), mask=(32, 16, 0.6))


def _resnet_pre(algo: str, depth: int, epochs: int = 300) -> Recipe:
    a2mim = algo == 'a2mim'
    groups = {
        'backbone.conv1.weight': (1, WD), 'backbone.bn1.weight': (1, NO),
        'backbone.layer1.0.conv1.weight': (1, WD), 'backbone.layer3.0.bn3.weight': (1, NO),
        'backbone.layer2.0.downsample.1.weight': (1, WD),  # regex quirk: decayed
        'backbone.layer2.0.downsample.1.bias': (1, NO),
        'backbone.mask_token': (0.1 if a2mim else 1, NO),  # x0.1: A2MIM rows only
        'neck.decoder.0.weight': (1, WD)}
    if a2mim:  # listed (wd 0, x0.1) only by the 100-epoch R-50 row
        groups['backbone.mask_gamma'] = (0.1, NO) if epochs == 100 else (1, WD)
    name = (f'a2mim/imagenet/r{depth}_l3_sz224_init_8xb256_cos_ep{epochs}.py' if a2mim else
            f'simmim/imagenet/r{depth}_sz224_8xb256_fp16_ep300.py')
    return Recipe(
        official=f'{OPENMIXUP}selfsup/{name}', optimizer='AdamW',
        lr=1.2e-3 if a2mim else 8e-4, weight_decay=WD, total_batch=2048, batch=256, accum=1,
        epochs=epochs, amp=not a2mim, clip_grad=None, schedule=PRE_COS, groups=groups,
        crop=(224, 0.8 if a2mim else 0.67, 'bilinear'), mask=(32, 16 if a2mim else 4, 0.6))


def _convnext_pre(algo: str, arch: str) -> Recipe:
    a2mim = algo == 'a2mim'
    groups = {
        'backbone.stages.2.26.norm.weight': (1, WD),  # bn/ln/gn regex misses `norm`
        'backbone.stages.0.0.norm.bias': (1, NO), 'backbone.stages.0.0.gamma': (1, NO),
        'backbone.downsample_layers.1.0.weight': (1, WD), 'backbone.norm3.weight': (1, WD),
        'backbone.stages.1.0.pointwise_conv1.weight': (1, WD),
        'backbone.mask_token': (0.1 if a2mim else 1, NO), 'neck.decoder.0.weight': (1, WD)}
    if a2mim:
        groups['backbone.mask_gamma'] = (0.1, NO)
    short = arch[0]
    name = (f'a2mim/imagenet/convnext_{short}_l3_sz224_init_8xb256_cos_ep300.py' if a2mim else
            f'simmim/imagenet/convnext_{arch}_sz224_8xb256_fp16_ep300.py')
    return Recipe(
        official=f'{OPENMIXUP}selfsup/{name}', optimizer='AdamW',
        lr=1.2e-3 if a2mim else 8e-4, weight_decay=WD, total_batch=2048, batch=256, accum=1,
        epochs=300, amp=True, clip_grad=None, schedule=PRE_COS, groups=groups,
        crop=(224, 0.8 if a2mim else 0.67, 'bilinear'), mask=(32, 32 if a2mim else 4, 0.6))


def _vit_ft(arch: str, epochs: int) -> Recipe:
    depth = {'small': 8, 'base': 12, 'large': 24}[arch]
    gpus, batch, accum = {'small': (8, 128, 1), 'base': (4, 128, 2), 'large': (8, 64, 2)}[arch]
    layout = {'small': 'sz224_8xb128', 'base': 'sz224_4xb128_accu2',
              'large': 'sz224_8xb64_accu2'}[arch]
    r = 0.65  # layer decay: patch_embed / cls / pos 0.65^(L+1), block i 0.65^(L-i), head 1
    return Recipe(
        official=f'{OPENMIXUP}benchmarks/classification/imagenet/vit_{arch}_p16_swin_ft_simmim_'
                 f'{layout}_cos_ep{epochs}.py',
        optimizer='AdamW', lr=1e-2, weight_decay=WD, total_batch=1024, batch=batch,
        accum=accum, epochs=epochs, amp=True, clip_grad=5.0, schedule=VIT_FT,
        groups={
            'backbone.patch_embed.projection.weight': (r**(depth + 1), WD),
            'backbone.cls_token': (r**(depth + 1), NO), 'backbone.pos_embed': (r**(depth + 1), NO),
            'backbone.layers.0.attn.qkv.weight': (r**depth, WD),
            'backbone.layers.0.attn.relative_position_bias_table': (r**depth, NO),
            'backbone.layers.0.gamma_1': (r**depth, NO),
            f'backbone.layers.{depth - 1}.ffn.layers.1.weight': (r, WD),
            'backbone.ln2.weight': (1, NO), 'head.fc.weight': (1, WD), 'head.fc.bias': (1, NO)},
        crop=(224, 0.08, 'bicubic'), rand_aug=9, erase=0.25,
        ema=None if arch == 'small' else (4e-5, 20, 0.9))


def _rsb(depth: int, protocol: str) -> Recipe:
    a2 = protocol == 'a2'
    wd = 0.02
    name = (f'r{depth}_rsb_a2_ft_sz224_8xb256_cos_fp16_ep300.py' if a2 else
            'r50_rsb_a3_ft_sz160_4xb512_cos_fp16_ep100.py')
    return Recipe(
        official=f'{OPENMIXUP}benchmarks/classification/imagenet/{name}', optimizer='Lamb',
        lr=5e-3 if a2 else 8e-3, weight_decay=wd, total_batch=2048, batch=256 if a2 else 512,
        accum=1, epochs=300 if a2 else 100, amp=True, clip_grad=None, schedule=RSB,
        groups={
            'backbone.conv1.weight': (1, wd), 'backbone.bn1.weight': (1, NO),
            'backbone.layer1.0.bn2.weight': (1, NO), 'backbone.layer1.0.conv2.weight': (1, wd),
            'backbone.layer1.0.downsample.1.weight': (1, wd),  # (bn|gn)\d* misses it
            'backbone.layer1.0.downsample.1.bias': (1, NO),
            'head.fc.weight': (1, wd), 'head.fc.bias': (1, NO)},
        crop=(224 if a2 else 160, 0.08, 'bicubic'), rand_aug=7 if a2 else 6,
        ema=(1e-4, 20, 0.9) if a2 and depth == 50 else None)


def _spark(arch: str) -> Recipe:
    return Recipe(
        official=f'{OPENMIXUP}benchmarks/classification/imagenet/convnext_{arch[0]}_spark_ft_'
                 'sz224_8xb256_cos_fp16_ep300.py',
        optimizer='AdamW', lr=4e-3, weight_decay=WD, total_batch=4096, batch=256, accum=2,
        epochs=300, amp=True, clip_grad=None, schedule=SPARK,
        groups={
            'backbone.stages.0.0.norm.weight': (1, NO), 'backbone.stages.0.0.gamma': (1, NO),
            'backbone.norm3.weight': (1, NO),
            'backbone.downsample_layers.0.1.weight': (1, WD),  # LN outside `norm` names
            'backbone.downsample_layers.2.0.weight': (1, WD),
            'backbone.downsample_layers.2.0.bias': (1, NO),
            'backbone.stages.1.0.pointwise_conv1.weight': (1, WD),
            'head.fc.weight': (1, WD), 'head.fc.bias': (1, NO)},
        crop=(224, 0.08, 'bicubic'), rand_aug=9, erase=0.25, ema=(1e-4, 20, 0.9))


_PRE, _FT = 'a2mim', 'a2mim/benchmarks'
RECIPES: Dict[str, Recipe] = {
    # ---- pre-training (openmixup configs/selfsup/...) ----
    f'{_PRE}/a2mim_vit-small-p16_8xb256-step-800e_in1k': _vit_pre(
        'a2mim', 'small', 256, 1, False, 'vit_small_l0_sz224_8xb256_step_ep800.py'),
    f'{_PRE}/a2mim_vit-base-p16_8xb128-accu2-step-800e_in1k': _vit_pre(
        'a2mim', 'base', 128, 2, False, 'vit_base_l0_sz224_8xb128_accu2_step_ep800.py'),
    f'{_PRE}/a2mim_vit-large-p16_8xb128-accu2-step-800e_in1k': _vit_pre(
        'a2mim', 'large', 128, 2, False, 'vit_large_l0_sz224_8xb128_accu2_step_ep800.py'),
    'simmim_baselines/a2mim-simmim_vit-small-p16_8xb256-amp-step-800e_in1k': _vit_pre(
        'simmim', 'small', 256, 1, True, 'vit_small_sz224_8xb256_step_fp16_ep800.py'),
    'simmim_baselines/a2mim-simmim_vit-base-p16_8xb128-accu2-step-800e_in1k': _vit_pre(
        'simmim', 'base', 128, 2, False, 'vit_base_sz224_8xb128_accu2_step_fp16_ep800.py'),
    'simmim_baselines/a2mim-simmim_vit-large-p16_8xb128-accu2-amp-step-800e_in1k': _vit_pre(
        'simmim', 'large', 128, 2, True, 'vit_large_sz224_8xb128_accu2_step_fp16_ep800.py'),
    **{f'{_PRE}/a2mim_resnet{d}_8xb256-coslr-300e_in1k': _resnet_pre('a2mim', d)
       for d in (50, 101, 152, 200)},
    f'{_PRE}/a2mim_resnet50_8xb256-coslr-100e_in1k': _resnet_pre('a2mim', 50, epochs=100),
    **{f'simmim_baselines/a2mim-simmim_resnet{d}_8xb256-amp-coslr-300e_in1k':
       _resnet_pre('simmim', d) for d in (50, 101, 152, 200)},
    **{f'{_PRE}/a2mim_convnext-{a}_8xb256-amp-coslr-300e_in1k': _convnext_pre('a2mim', a)
       for a in ('small', 'base')},
    **{f'simmim_baselines/a2mim-simmim_convnext-{a}_8xb256-amp-coslr-300e_in1k':
       _convnext_pre('simmim', a) for a in ('small', 'base')},
    # ---- fine-tuning (openmixup configs/benchmarks/classification/imagenet/...) ----
    f'{_FT}/vit-small-p16_a2mim-800e-pre_8xb128-amp-coslr-200e_in1k': _vit_ft('small', 200),
    f'{_FT}/vit-small-p16_a2mim-simmim-800e-pre_8xb128-amp-coslr-100e_in1k': _vit_ft('small', 100),
    f'{_FT}/vit-base-p16_a2mim-800e-pre_4xb128-accu2-amp-coslr-100e_in1k': _vit_ft('base', 100),
    f'{_FT}/vit-base-p16_a2mim-simmim-800e-pre_4xb128-accu2-amp-coslr-100e_in1k': _vit_ft(
        'base', 100),
    f'{_FT}/vit-large-p16_a2mim-800e-pre_8xb64-accu2-amp-coslr-150e_in1k': _vit_ft('large', 150),
    f'{_FT}/vit-large-p16_a2mim-simmim-800e-pre_8xb64-accu2-amp-coslr-100e_in1k': _vit_ft(
        'large', 100),
    **{f'{_FT}/resnet{d}_a2mim-300e-pre_8xb256-amp-rsb-a2-300e_in1k': _rsb(d, 'a2')
       for d in (50, 101, 152, 200)},
    **{f'{_FT}/resnet{d}_a2mim-simmim-300e-pre_8xb256-amp-rsb-a2-300e_in1k': _rsb(d, 'a2')
       for d in (50, 101, 152, 200)},
    f'{_FT}/resnet50_a2mim-300e-pre_4xb512-amp-rsb-a3-100e_in1k': _rsb(50, 'a3'),
    f'{_FT}/resnet50_a2mim-100e-pre_4xb512-amp-rsb-a3-100e_in1k': _rsb(50, 'a3'),
    **{f'{_FT}/convnext-{a}_a2mim{s}-300e-pre_8xb256-accu2-amp-coslr-300e_in1k': _spark(a)
       for a in ('small', 'base') for s in ('', '-simmim')},
}


# --------------------------------------------------------------------------------------------
# Reading the effective values from the built objects
# --------------------------------------------------------------------------------------------
@lru_cache(maxsize=None)
def _config(stem: str) -> Config:
    return Config.fromfile(str(CONFIGS / f'{stem}.py'))


def _narrow_backbone(backbone: dict) -> dict:
    """The same CNN backbone (type, depths, every parameter name) at a few channels."""
    backbone = copy.deepcopy(backbone)
    backbone.pop('init_cfg', None)
    if 'ConvNeXt' in backbone['type']:
        depths = MODELS.get(backbone['type']).arch_settings[backbone['arch']]['depths']
        backbone['arch'] = dict(depths=depths, channels=[8, 16, 32, 64])
    else:  # ResNet / A2MIMResNet: widths from stem_channels and base_channels
        backbone.update(stem_channels=8, base_channels=8)
    return backbone


def _build_model(model_cfg, narrow: bool = True) -> torch.nn.Module:
    """The config's model; CNNs narrow on the CPU, ViTs at full size on the meta device (their
    relative-position indices cost seconds to compute on the CPU, shapes cost nothing)."""
    model_cfg = copy.deepcopy(model_cfg)
    if 'ViT' in model_cfg['backbone']['type']:
        model_cfg['backbone'].pop('init_cfg', None)
        with torch.device('meta'):
            return MODELS.build(model_cfg)
    if narrow:
        model_cfg['backbone'] = _narrow_backbone(model_cfg['backbone'])
        width = 64  # ConvNeXt's last channels; ResNet: 8 * base_channels * block expansion
        if 'ResNet' in model_cfg['backbone']['type']:
            width = 8 * 8 * (4 if model_cfg['backbone'].get('depth', 50) >= 50 else 1)
        for part in ('neck', 'head'):  # the decoder / classifier read the backbone's width
            if model_cfg.get(part) and 'in_channels' in model_cfg[part]:
                model_cfg[part]['in_channels'] = width
    return MODELS.build(model_cfg)


def _optim_wrapper(cfg: Config, model: torch.nn.Module) -> OptimWrapper:
    optim_cfg = copy.deepcopy(cfg.optim_wrapper.to_dict())
    optim_cfg['type'] = 'OptimWrapper'  # AmpOptimWrapper can only be built with a GPU
    optim_cfg.pop('loss_scale', None)
    return build_optim_wrapper(model, optim_cfg)


def _lr_deviation(cfg: Config, recipe: Recipe) -> Tuple[float, List[str]]:
    """Steps the config's schedulers as mmengine's ParamSchedulerHook does (iteration-based
    ones after every iteration, epoch-based ones after every epoch) and returns the largest
    difference from the official policy (after the documented warm-up difference) in units
    of the tolerance, with the first few offending iterations."""
    key = (repr(cfg.param_scheduler), cfg.train_cfg.max_epochs, recipe.lr, recipe.epochs,
           recipe.schedule)
    if key not in _LR_CHECKS:
        _LR_CHECKS[key] = _step_schedulers(cfg, recipe)
    return _LR_CHECKS[key]


def _step_schedulers(cfg: Config, recipe: Recipe) -> Tuple[float, List[str]]:
    base, epoch_len = recipe.lr, EPOCH_LEN
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=base)
    wrapper = OptimWrapper(optimizer)
    epochs = cfg.train_cfg.max_epochs
    schedulers = []
    for sched in cfg.param_scheduler:
        sched = copy.deepcopy(sched.to_dict())
        sched.setdefault('end', epochs)  # what the Runner does
        schedulers.append(PARAM_SCHEDULERS.build(
            sched, default_args=dict(optimizer=wrapper, epoch_length=epoch_len)))
    iter_based = [s for s in schedulers if not s.by_epoch]
    epoch_based = [s for s in schedulers if s.by_epoch]
    group = optimizer.param_groups[0]
    # mmengine's LinearLR reaches its end factor one iteration before `end` (1 / warm-up
    # iterations relative); everything else is exact up to rounding.
    warm_iters = recipe.schedule.warmup * epoch_len
    tol_warm = 1.5 / warm_iters
    worst, bad, it = 0., [], 0
    for _ in range(recipe.epochs):
        for _ in range(epoch_len):
            official, documented = recipe.schedule.lr(it, base, epoch_len, recipe.epochs)
            expected = official * documented
            # 2e-6 x base of slack: LinearLR cannot start at 0 (StepFix); start_factor 1e-6.
            err = max(abs(group['lr'] - expected) - 2e-6 * base, 0.) / max(expected, 1e-6 * base)
            tol = tol_warm if it < warm_iters else 1e-6
            worst = max(worst, err / tol)
            if err > tol and len(bad) < 3:
                bad.append(f'iteration {it}: lr {group["lr"]:.6g}, official {official:.6g}'
                           f' (x {documented:.4g} documented)')
            for s in iter_based:
                s.step()
            it += 1
        for s in epoch_based:
            s.step()
    return worst, bad


def _transforms(pipeline) -> Dict[str, object]:
    built = {}
    for t in pipeline:
        t = dict(t)
        t.pop('_scope_', None)
        obj = TRANSFORMS.build(t)
        built[type(obj).__name__] = obj
    return built


def _build_hook(hook_cfg):
    hook_cfg = copy.deepcopy(dict(hook_cfg))
    hook_cfg.pop('priority', None)  # the Runner takes it off before building the hook
    return HOOKS.build(hook_cfg)


def effective(stem: str) -> Dict[str, object]:
    """The values of ``Recipe`` for config ``stem``, read from what the config builds."""
    cfg = _config(stem)
    model = _build_model(cfg.model)
    wrapper = _optim_wrapper(cfg, model)
    opt = wrapper.optimizer
    base_lr = opt.defaults['lr']
    names = {id(p): n for n, p in model.named_parameters()}
    groups = {names[id(p)]: g for g in opt.param_groups for p in g['params']}
    values = {
        'optimizer': type(opt).__name__, 'lr': base_lr,
        'weight_decay': opt.defaults['weight_decay'],
        'accum': wrapper._accumulative_counts,  # mmengine keeps it only here
        'clip_grad': (wrapper.clip_grad_kwargs or {}).get('max_norm'),
        'amp': cfg.optim_wrapper.type == 'AmpOptimWrapper',
        'batch': cfg.train_dataloader.batch_size, 'epochs': cfg.train_cfg.max_epochs,
    }
    if 'betas' in opt.defaults:
        values['betas, eps'] = (tuple(opt.defaults['betas']), opt.defaults['eps'])
    hooks = [_build_hook(h) for h in cfg.get('custom_hooks', [])]
    check = _build_hook(cfg.default_hooks.total_batch_check)
    values['total_batch'] = check.total_batch
    ema = [h for h in hooks if 'EMA' in type(h).__name__]
    values['ema'] = None if not ema else (
        type(ema[0]).__name__, ema[0].momentum, ema[0].warmup_epochs, ema[0].warmup_ratio)
    values['groups'] = {n: (round(g['lr'] / base_lr, 12), g['weight_decay'])
                        for n, g in groups.items()}
    built = _transforms(cfg.train_dataloader.dataset.pipeline)
    rrc = built['RandomResizedCrop']
    values['crop'] = (rrc.scale[0], rrc.crop_ratio_range[0], rrc.interpolation)
    if 'SimMIMMaskGenerator' in built:
        m = built['SimMIMMaskGenerator']
        values['mask'] = (m.mask_patch_size, m.model_patch_size, m.mask_ratio)
    values['rand_aug'] = built['RandAugment'].magnitude_level if 'RandAugment' in built \
        else None
    values['erase'] = built['RandomErasing'].erase_prob if 'RandomErasing' in built else None
    return values


def expected(recipe: Recipe) -> Dict[str, object]:
    values = {
        'optimizer': recipe.optimizer, 'lr': recipe.lr, 'weight_decay': recipe.weight_decay,
        'accum': recipe.accum, 'clip_grad': recipe.clip_grad, 'amp': recipe.amp,
        'batch': recipe.batch, 'epochs': recipe.epochs, 'total_batch': recipe.total_batch,
        'ema': None if recipe.ema is None else ('OptimStepEMAHook', *recipe.ema),
        'crop': recipe.crop, 'rand_aug': recipe.rand_aug, 'erase': recipe.erase,
    }
    if recipe.optimizer == 'AdamW':
        values['betas, eps'] = ((0.9, 0.999), 1e-8)
    if recipe.mask is not None:
        values['mask'] = recipe.mask
    return values


def _drift(stem: str, got: Dict[str, object], want: Dict[str, object]) -> List[str]:
    drift = []
    for key, value in want.items():
        built = got.get(key, '<missing>')
        same = (built == pytest.approx(value, rel=1e-9) if isinstance(value, float) and
                isinstance(built, float) else built == value)
        if not same:
            drift.append(f'{stem}: {key}: official {value!r}, built {built!r}')
    return drift


# --------------------------------------------------------------------------------------------
# Tests
# --------------------------------------------------------------------------------------------
def test_table_covers_every_published_config():
    """The configs the README's published rows link, and nothing else."""
    readme = (REPO_ROOT / 'README.md').read_text().split('## Published rows')[1]
    readme = readme.split('\n## ')[0]
    linked = set(re.findall(r'\]\(configs/([\w./-]+?)\.py\)', readme))
    assert linked == set(RECIPES), sorted(linked ^ set(RECIPES))


@pytest.mark.parametrize('stem', sorted(RECIPES), ids=lambda s: s.split('/')[-1])
def test_recipe(stem):
    recipe = RECIPES[stem]
    got = effective(stem)
    drift = _drift(stem, got, expected(recipe))
    # Probed optimizer groups: (LR multiple, weight decay) from the built param groups.
    for name, (lr_mult, wd) in recipe.groups.items():
        built = got['groups'].get(name)
        if built is None:
            drift.append(f'{stem}: group[{name}]: no such parameter in the built model')
        elif built != (pytest.approx(lr_mult, rel=1e-9), wd):
            drift.append(f'{stem}: group[{name}] (lr x, weight decay): official '
                         f'{(lr_mult, wd)}, built {built}')
    # The LR at every iteration against the official policy.
    worst, bad = _lr_deviation(_config(stem), recipe)
    if bad:
        drift.append(f'{stem}: lr schedule: {worst:.3g} x tolerance off the official '
                     f'{recipe.schedule} ({"; ".join(bad)})')
    assert not drift, f'drift from {recipe.official}:\n' + '\n'.join(drift)


def test_auto_scale_base_batch_is_the_recipe_total_without_accumulation():
    """mmengine's --auto-scale-lr counts GPUs x batch per GPU only."""
    for stem, recipe in RECIPES.items():
        cfg = _config(stem)
        assert cfg.auto_scale_lr.base_batch_size * recipe.accum == recipe.total_batch, stem


def test_rsb_lr_is_constant_within_each_epoch_after_warmup():
    """The official RSB cosine is mmcv's default by_epoch=True (spec 6.4)."""
    stem = f'{_FT}/resnet50_a2mim-300e-pre_8xb256-amp-rsb-a2-300e_in1k'
    cfg, epoch_len = _config(stem), 3
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=5e-3)
    wrapper = OptimWrapper(optimizer)
    schedulers = [PARAM_SCHEDULERS.build(copy.deepcopy(s.to_dict()), default_args=dict(
        optimizer=wrapper, epoch_length=epoch_len)) for s in cfg.param_scheduler]
    per_epoch = []
    for epoch in range(300):
        lrs = []
        for _ in range(epoch_len):
            lrs.append(optimizer.param_groups[0]['lr'])
            for s in schedulers:
                if not s.by_epoch:
                    s.step()
        for s in schedulers:
            if s.by_epoch:
                s.step()
        if epoch >= 5:
            assert max(lrs) - min(lrs) <= 1e-12 * lrs[0], (epoch, lrs)
        per_epoch.append(lrs[0])
    assert per_epoch[5] == pytest.approx(_annealing_cos(5e-3, 1e-6, 5 / 300), rel=1e-6)
    assert per_epoch[150] == pytest.approx(_annealing_cos(5e-3, 1e-6, 0.5), rel=1e-6)
    assert per_epoch[299] == pytest.approx(_annealing_cos(5e-3, 1e-6, 299 / 300), rel=1e-6)


@pytest.mark.parametrize('stem', [
    f'{_PRE}/a2mim_resnet50_8xb256-coslr-300e_in1k',
    f'{_FT}/resnet50_a2mim-300e-pre_8xb256-amp-rsb-a2-300e_in1k',
    f'{_PRE}/a2mim_convnext-small_8xb256-amp-coslr-300e_in1k',
    f'{_FT}/convnext-small_a2mim-300e-pre_8xb256-accu2-amp-coslr-300e_in1k',
], ids=lambda s: s.split('/')[-1])
def test_narrow_models_keep_every_parameter_name(stem):
    """The narrow builds have exactly the full-size models' parameter names (and so the same
    optimizer groups); checked on the cheapest real model of each CNN family."""
    cfg = _config(stem)
    real = {n for n, _ in _build_model(cfg.model, narrow=False).named_parameters()}
    narrow = {n for n, _ in _build_model(cfg.model).named_parameters()}
    assert real == narrow


def test_a_drifted_value_fails_with_its_key():
    """What a future edit that leaves the official recipe gets to read."""
    stem = f'{_FT}/resnet50_a2mim-300e-pre_8xb256-amp-rsb-a2-300e_in1k'
    got = effective(stem)
    drifted = dict(got, lr=got['lr'] * 2, crop=(224, 0.35, 'bicubic'))
    drift = _drift(stem, drifted, expected(RECIPES[stem]))
    assert [d.split(': ')[1] for d in drift] == ['lr', 'crop']
    assert 'official 0.005, built 0.01' in drift[0]
