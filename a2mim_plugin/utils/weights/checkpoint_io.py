"""Reading, writing and provenance of backbone checkpoints for the weight tools.

The tools write ``{'state_dict': {'backbone.<name>': tensor, ...}, 'meta': {...}}``. The
``backbone.`` prefix is kept on purpose: a downstream MMPretrain / MMDetection / MMSegmentation
config then loads a full pre-training checkpoint and an exported one with the same
``init_cfg=dict(type='Pretrained', checkpoint=..., prefix='backbone.')``.
"""
import hashlib
import io
import os
import time
from typing import Dict, Optional, Tuple

import torch

from ...models.mask_injection import MASK_PARAM_NAMES
from ..atomic_io import atomic_write_bytes

PREFIX = 'backbone.'
MASK_KEYS = MASK_PARAM_NAMES


class WeightToolError(RuntimeError):
    """A user-facing failure of the weight tools (printed to stderr, exit code 1)."""


# --------------------------------------------------------------------------------------------
# Reading and writing
# --------------------------------------------------------------------------------------------
def load_checkpoint_weights_only(path: str) -> dict:
    """``torch.load(path, map_location='cpu', weights_only=True)``.

    Importing ``a2mim_plugin`` first allow-lists the few classes of mmengine runner checkpoints
    (``HistoryBuffer``, numpy arrays). Anything else is refused: the error says which global
    was refused instead of falling back to an unsafe load.
    """
    import a2mim_plugin  # noqa: F401  (registers the weights-only allow-list)

    if not os.path.isfile(path):
        raise WeightToolError(f'checkpoint not found: {path}')
    try:
        ckpt = torch.load(path, map_location='cpu', weights_only=True)
    except Exception as err:  # torch raises UnpicklingError / RuntimeError variants
        raise WeightToolError(
            f'cannot read {path} with torch.load(weights_only=True): {err}\n'
            'The checkpoint holds a Python object outside the allow-list. This tool does not '
            'fall back to weights_only=False; re-save only the tensors (the state_dict) of a '
            'checkpoint you trust and run the tool on that file.') from err
    if not isinstance(ckpt, dict):
        raise WeightToolError(f'{path} does not hold a dict (got {type(ckpt).__name__}).')
    return ckpt


def file_sha256(path: str, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, 'rb') as f:
        for block in iter(lambda: f.read(chunk), b''):
            digest.update(block)
    return digest.hexdigest()


def save_atomic(obj: dict, path: str) -> None:
    """``torch.save`` ``obj`` so that ``path`` never holds a partial file."""
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    atomic_write_bytes(buffer.getvalue(), path)


def to_builtin(obj):
    """Plain Python containers only (``ConfigDict`` -> dict), so that the saved meta loads
    with ``weights_only=True`` anywhere, without the plugin's allow-list."""
    if isinstance(obj, dict):
        return {str(k): to_builtin(v) for k, v in obj.items()}
    if isinstance(obj, tuple):
        return tuple(to_builtin(v) for v in obj)
    if isinstance(obj, list):
        return [to_builtin(v) for v in obj]
    if obj is None or type(obj) in (bool, int, float, str):
        return obj
    if isinstance(obj, bool):  # numpy / torch subclasses -> the exact builtin type
        return bool(obj)
    if isinstance(obj, int):
        return int(obj)
    if isinstance(obj, float):
        return float(obj)
    return str(obj).encode('utf-8').decode('utf-8')  # exact str (e.g. from TorchVersion)


def raw_state_dict(ckpt: dict) -> Dict[str, torch.Tensor]:
    """The tensor dict of a checkpoint (its ``state_dict`` / ``model`` entry, or itself)."""
    for key in ('state_dict', 'model'):
        if isinstance(ckpt.get(key), dict):
            ckpt = ckpt[key]
            break
    state = {}
    for name, value in ckpt.items():
        if not isinstance(value, torch.Tensor):
            raise WeightToolError(f'entry {name!r} of the state dict is a '
                                  f'{type(value).__name__}, not a tensor.')
        key = name[len('module.'):] if name.startswith('module.') else name
        if key in state:
            raise WeightToolError(f"the state dict holds both 'module.{key}' and '{key}': "
                                  'it mixes wrapped and unwrapped weights; keep one set.')
        state[key] = value
    if not state:
        raise WeightToolError('the checkpoint holds an empty state dict.')
    return state


def backbone_state_dict(state: Dict[str, torch.Tensor]) -> Tuple[Dict[str, torch.Tensor], str]:
    """Backbone tensors without the ``backbone.`` prefix, and the form of the input.

    A full checkpoint (some keys start with ``backbone.``) keeps only those; neck, head and
    data-preprocessor entries are dropped. Otherwise the dict is taken as backbone-only (as
    OpenMixup's ``extract_backbone_weights.py`` writes it).
    """
    if any(k.startswith(PREFIX) for k in state):
        return {k[len(PREFIX):]: v for k, v in state.items() if k.startswith(PREFIX)}, 'full'
    return dict(state), 'backbone-only'


def with_prefix(state: Dict[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
    return {PREFIX + k: v.detach().clone().contiguous() for k, v in state.items()}


def split_mask_keys(state: Dict[str, torch.Tensor]
                    ) -> Tuple[Dict[str, torch.Tensor], Dict[str, torch.Tensor]]:
    plain = {k: v for k, v in state.items() if k not in MASK_KEYS}
    mask = {k: v for k, v in state.items() if k in MASK_KEYS}
    return plain, mask


def provenance(tool: str, source: str, extra: Optional[dict] = None) -> dict:
    import a2mim_plugin

    meta = dict(tool=tool, a2mim_plugin_version=getattr(a2mim_plugin, '__version__', 'unknown'),
                torch_version=torch.__version__, source=os.path.abspath(source),
                source_sha256=file_sha256(source),
                created=time.strftime('%Y-%m-%dT%H:%M:%S%z'), key_prefix=PREFIX,
                load_with="init_cfg=dict(type='Pretrained', checkpoint=<this file>, "
                          "prefix='backbone.')")
    meta.update(extra or {})
    return to_builtin(meta)
