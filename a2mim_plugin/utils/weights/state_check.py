"""Checking a state dict against the backbone it is meant for (missing, unexpected,
mis-shaped keys and keys a load hook would change)."""
import copy
from typing import Dict, Iterable, List, Optional

import torch
from torch import nn

from .checkpoint_io import WeightToolError


def check_state_dict(model: nn.Module, state: Dict[str, torch.Tensor],
                     ignore: Iterable[str] = ()) -> Dict[str, List[str]]:
    """Load ``state`` (no prefix) into ``model`` and list every disagreement.

    Returns a dict with ``missing`` (model keys absent from ``state``), ``unexpected`` (keys
    of ``state`` the model lacks, except ``ignore``), ``shape`` (``key: ckpt vs model``) and
    ``value`` (keys whose tensor differs from the model's deterministic buffer, or that did
    not land unchanged). All empty means an exact match.
    """
    ignore = set(ignore)
    expected = model.state_dict()
    report = dict(missing=sorted(k for k in expected if k not in state),
                  unexpected=sorted(k for k in state if k not in expected and k not in ignore),
                  shape=[], value=[])
    for key, value in state.items():
        if key in expected and tuple(value.shape) != tuple(expected[key].shape):
            report['shape'].append(f'{key}: checkpoint {tuple(value.shape)} vs model '
                                   f'{tuple(expected[key].shape)}')
        elif key.endswith('relative_position_index') and key in expected and \
                not torch.equal(value.to(expected[key].dtype), expected[key]):
            # deterministic index buffer: a different one means a different layout
            report['value'].append(f'{key}: differs from the index the model computes')
    if any(report.values()):
        return report
    loadable = {k: v for k, v in state.items() if k in expected}
    model.load_state_dict(copy.copy(loadable), strict=True)
    loaded = model.state_dict()
    for key, value in loadable.items():
        if not torch.equal(loaded[key], value.to(loaded[key].dtype)):
            report['value'].append(f'{key}: changed while loading (load hook?)')
    return report


def format_report(report: Dict[str, List[str]], what: str) -> str:
    titles = dict(missing='missing keys (in the model, not in the checkpoint)',
                  unexpected='unexpected keys (in the checkpoint, not in the model)',
                  shape='shape mismatches', value='value mismatches')
    lines = [f'The weights do not match {what}:']
    for name, title in titles.items():
        if report.get(name):
            lines.append(f'  {title} [{len(report[name])}]:')
            lines.extend(f'    {key}' for key in report[name])
    return '\n'.join(lines)


def describe(model: nn.Module) -> str:
    """``module.Class`` of a model, for messages."""
    return f'{type(model).__module__}.{type(model).__name__}'


def verify_or_raise(model: nn.Module, state: Dict[str, torch.Tensor], ignore: Iterable[str] = (),
                    what: Optional[str] = None) -> None:
    report = check_state_dict(model, state, ignore)
    if any(report.values()):
        raise WeightToolError(format_report(report, what or describe(model)))
