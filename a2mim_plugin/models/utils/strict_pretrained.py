"""``Pretrained`` initialisation that can refuse to leave a backbone silently random.

MMEngine's ``Pretrained`` init loads with ``strict=False`` and only warns about missing keys,
so a wrong ``prefix`` or a renamed key leaves the backbone at its random init. The plugin
registers, under the same name ``'Pretrained'`` in the MMPretrain, MMDetection and
MMSegmentation registries, a drop-in subclass that behaves exactly like the stock one unless
the config adds ``strict=True``::

    init_cfg=dict(type='Pretrained', checkpoint=PATH, prefix='backbone.', strict=True,
                  allow_missing=[r'^norm[012]\\.'])

The type name must stay ``'Pretrained'``: MMEngine applies it after the children's own init
and MMPretrain's backbones skip their re-initialisation only for that literal name.
"""
import re
from collections import Counter
from typing import List, Optional, Sequence

import torch
from mmengine.logging import print_log
from mmengine.model.weight_init import PretrainedInit, update_init_info
from mmengine.registry import Registry
from mmengine.runner.checkpoint import _load_checkpoint

MASK_TOKEN_KEYS = (r'(^|\.)mask_token$', r'(^|\.)mask_gamma$')


class StrictPretrainedInit(PretrainedInit):
    """``PretrainedInit`` with an optional check that every tensor was loaded.

    Args:
        checkpoint: path of the checkpoint.
        prefix: keep only keys starting with it, and strip it (e.g. 'backbone.'). Full A2MIM
            pre-training checkpoints and ``tools/export_backbone.py`` outputs both carry
            ``backbone.`` keys, so ``prefix='backbone.'`` loads either.
        map_location: as ``torch.load``.
        strict: False (default) is the stock behaviour (warnings only). True loads with
            ``Module.load_state_dict`` (its pre-hooks resize position embeddings) and raises,
            naming the keys and the likely prefix fix, when a module key is not loaded or a
            checkpoint key is left unused.
        allow_missing: with ``strict``, regexes of module keys that are new by design (e.g.
            ``r'^norm[012]\\.'`` for ConvNeXt stages that pre-training did not norm).
        ignore_unexpected: with ``strict``, regexes of checkpoint keys that may stay unused;
            defaults to the A2MIM ``mask_token`` / ``mask_gamma``.
    """

    def __init__(self, checkpoint: str, prefix: Optional[str] = None,
                 map_location: str = 'cpu', strict: bool = False,
                 allow_missing: Sequence[str] = (),
                 ignore_unexpected: Sequence[str] = MASK_TOKEN_KEYS) -> None:
        super().__init__(checkpoint, prefix=prefix, map_location=map_location)
        if strict and not checkpoint:
            raise ValueError('Pretrained(strict=True) needs a checkpoint path; set it, e.g. '
                             'with --cfg-options model.backbone.init_cfg.checkpoint=PATH.')
        self.strict = strict
        self.allow_missing = [re.compile(p) for p in allow_missing]
        self.ignore_unexpected = [re.compile(p) for p in ignore_unexpected]

    def __call__(self, module: torch.nn.Module) -> None:
        if not self.strict:
            return super().__call__(module)
        ckpt = _load_checkpoint(self.checkpoint, map_location=self.map_location)
        all_keys = dict(ckpt.get('state_dict', ckpt)) if isinstance(ckpt, dict) else {}
        state_dict = self._select(all_keys, module)
        missing, unexpected = module.load_state_dict(state_dict, strict=False)
        missing = [k for k in missing if not any(p.search(k) for p in self.allow_missing)]
        unexpected = [k for k in unexpected
                      if not any(p.search(k) for p in self.ignore_unexpected)]
        if missing or unexpected:
            raise RuntimeError(self._report(missing, unexpected, list(all_keys)))
        print_log(f'Pretrained(strict=True): loaded all {len(state_dict)} tensors of '
                  f'{type(module).__name__} from {self.checkpoint} (prefix={self.prefix!r})',
                  logger='current')
        if hasattr(module, '_params_init_info'):
            update_init_info(module, init_info=self._get_init_info())

    def _select(self, state_dict: dict, module: torch.nn.Module) -> dict:
        if not self.prefix:
            return state_dict
        prefix = self.prefix if self.prefix.endswith('.') else self.prefix + '.'
        selected = {k[len(prefix):]: v for k, v in state_dict.items() if k.startswith(prefix)}
        if not selected:
            raise RuntimeError(
                f'Pretrained(strict=True): no key of {self.checkpoint} starts with {prefix!r}; '
                f'its keys start with {_top_prefixes(list(state_dict))}. '
                f'{_prefix_hint(list(module.state_dict()), list(state_dict))}')
        return selected

    def _report(self, missing: List[str], unexpected: List[str], ckpt_keys: List[str]) -> str:
        lines = [f'Pretrained(strict=True): {self.checkpoint} (prefix={self.prefix!r}) does not '
                 f'match the module: {len(missing)} missing and {len(unexpected)} unexpected '
                 'keys; training would start from a partly random backbone.']
        if missing:
            lines.append(f'missing ({len(missing)}): {_shorten(missing)}')
        if unexpected:
            lines.append(f'unexpected ({len(unexpected)}): {_shorten(unexpected)}')
        lines.append(_prefix_hint(missing, ckpt_keys))
        lines.append('If some module keys are new by design, list them in allow_missing.')
        return '\n'.join(line for line in lines if line)


def register_strict_pretrained(registry: Registry) -> None:
    """Register :class:`StrictPretrainedInit` as ``'Pretrained'`` in a child registry."""
    registry.register_module(name='Pretrained', module=StrictPretrainedInit, force=True)


def _shorten(keys: List[str], limit: int = 12) -> str:
    shown = ', '.join(keys[:limit])
    return shown + (f', ... (+{len(keys) - limit} more)' if len(keys) > limit else '')


def _top_prefixes(keys: List[str]) -> str:
    counts = Counter(k.split('.', 1)[0] + '.' for k in keys)
    return ', '.join(f'{p!r} ({n})' for p, n in counts.most_common(5)) or 'nothing (empty)'


def _prefix_hint(missing: List[str], ckpt_keys: List[str]) -> str:
    """Guess the prefix that maps checkpoint keys onto the missing module keys."""
    guesses = Counter()
    for key in missing[:200]:
        for ckpt_key in ckpt_keys:
            if ckpt_key.endswith('.' + key):
                guesses[ckpt_key[:-len(key)]] += 1
    if not guesses:
        return ''
    best, hits = guesses.most_common(1)[0]
    return (f'Likely fix: prefix={best!r} ({hits} of the missing keys exist in the checkpoint '
            f'under it), e.g. --cfg-options model.backbone.init_cfg.prefix={best}')
