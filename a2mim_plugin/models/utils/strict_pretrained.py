"""Pre-trained initialisation that refuses to leave a backbone silently random.

MMEngine's ``Pretrained`` init loads with ``strict=False`` and only warns about missing keys,
so a wrong ``prefix`` or a renamed key leaves the backbone at its random init. This initializer
loads the same way and then stops the run, naming the missing keys and the likely fix.
"""
import re
from collections import Counter
from typing import List, Optional, Sequence

import torch
from mmengine.logging import print_log
from mmengine.model.weight_init import update_init_info
from mmengine.runner.checkpoint import _load_checkpoint
from mmpretrain.registry import WEIGHT_INITIALIZERS

MASK_TOKEN_KEYS = (r'(^|\.)mask_token$', r'(^|\.)mask_gamma$')


@WEIGHT_INITIALIZERS.register_module()
class StrictPretrained:
    """Load ``checkpoint`` into a module and fail unless every tensor of it was loaded.

    Use it in place of ``dict(type='Pretrained', ...)``; in MMDetection / MMSegmentation
    configs write the scoped name ``'mmpretrain.StrictPretrained'`` (and import
    ``a2mim_plugin`` through ``custom_imports``). Full pre-training checkpoints and the output
    of ``tools/export_backbone.py`` both carry ``backbone.``-prefixed keys, so
    ``prefix='backbone.'`` loads either.

    Args:
        checkpoint: path of the checkpoint.
        prefix: keep only keys starting with it, and strip it (e.g. 'backbone.').
        map_location: as ``torch.load``.
        allow_missing: regexes of module keys that are new by design (e.g. ``'^norm[012]\\.'``
            for ConvNeXt stages that pre-training did not norm); matched keys keep their init.
        ignore_unexpected: regexes of checkpoint keys that may be left unused. Defaults to the
            A2MIM ``mask_token`` / ``mask_gamma``, the only pre-training-only backbone keys.

    Raises:
        RuntimeError: when a module key is not loaded or a checkpoint key is not used.
    """

    def __init__(self, checkpoint: str, prefix: Optional[str] = None,
                 map_location: str = 'cpu', allow_missing: Sequence[str] = (),
                 ignore_unexpected: Sequence[str] = MASK_TOKEN_KEYS) -> None:
        if not checkpoint:
            raise ValueError('StrictPretrained needs a checkpoint path; set it, e.g. with '
                             '--cfg-options model.backbone.init_cfg.checkpoint=PATH.')
        self.checkpoint = checkpoint
        self.prefix = prefix
        self.map_location = map_location
        self.allow_missing = [re.compile(p) for p in allow_missing]
        self.ignore_unexpected = [re.compile(p) for p in ignore_unexpected]

    def __call__(self, module: torch.nn.Module) -> None:
        ckpt = _load_checkpoint(self.checkpoint, map_location=self.map_location)
        all_keys = ckpt.get('state_dict', ckpt) if isinstance(ckpt, dict) else {}
        state_dict = self._select(dict(all_keys), module)
        missing, unexpected = module.load_state_dict(state_dict, strict=False)
        missing = [k for k in missing if not any(p.search(k) for p in self.allow_missing)]
        unexpected = [k for k in unexpected
                      if not any(p.search(k) for p in self.ignore_unexpected)]
        if missing or unexpected:
            raise RuntimeError(self._report(missing, unexpected, list(all_keys)))
        print_log(f'StrictPretrained: loaded all {len(state_dict)} tensors of '
                  f'{type(module).__name__} from {self.checkpoint} (prefix={self.prefix!r})',
                  logger='current')
        if hasattr(module, '_params_init_info'):
            update_init_info(module, init_info=f'StrictPretrained: load from {self.checkpoint}')

    def _select(self, state_dict: dict, module: torch.nn.Module) -> dict:
        if not self.prefix:
            return state_dict
        prefix = self.prefix if self.prefix.endswith('.') else self.prefix + '.'
        selected = {k[len(prefix):]: v for k, v in state_dict.items() if k.startswith(prefix)}
        if not selected:
            raise RuntimeError(
                f'StrictPretrained: no key of {self.checkpoint} starts with {prefix!r}; its keys '
                f'start with {_top_prefixes(list(state_dict))}. '
                f'{_prefix_hint(list(module.state_dict()), list(state_dict))}')
        return selected

    def _report(self, missing: List[str], unexpected: List[str], ckpt_keys: List[str]) -> str:
        lines = [f'StrictPretrained: {self.checkpoint} (prefix={self.prefix!r}) does not match '
                 f'the module: {len(missing)} missing and {len(unexpected)} unexpected keys; '
                 'training would start from a partly random backbone.']
        if missing:
            lines.append(f'missing ({len(missing)}): {_shorten(missing)}')
        if unexpected:
            lines.append(f'unexpected ({len(unexpected)}): {_shorten(unexpected)}')
        lines.append(_prefix_hint(missing, ckpt_keys))
        lines.append('If some keys are new by design, list them in allow_missing.')
        return '\n'.join(line for line in lines if line)


def _shorten(keys: List[str], limit: int = 12) -> str:
    shown = ', '.join(keys[:limit])
    return shown + (f', ... (+{len(keys) - limit} more)' if len(keys) > limit else '')


def _top_prefixes(keys: List[str]) -> str:
    counts = Counter(k.split('.', 1)[0] + '.' for k in keys)
    return ', '.join(f'{p!r} ({n})' for p, n in counts.most_common(5)) or 'nothing (empty)'


def _prefix_hint(missing: List[str], ckpt_keys: List[str]) -> str:
    """Guess the prefix that maps checkpoint keys onto the missing module keys."""
    guesses = Counter()
    ckpt_set = set(ckpt_keys)
    for key in missing[:200]:
        for ckpt_key in ckpt_set:
            if ckpt_key.endswith('.' + key):
                guesses[ckpt_key[:-len(key)]] += 1
    if not guesses:
        return ''
    best, hits = guesses.most_common(1)[0]
    return (f'Likely fix: prefix={best!r} ({hits} of the missing keys exist in the checkpoint '
            f'under it), e.g. --cfg-options model.backbone.init_cfg.prefix={best}')
