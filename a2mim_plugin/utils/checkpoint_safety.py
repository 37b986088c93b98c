"""Let ``torch.load(weights_only=True)`` read mmengine runner checkpoints.

Since torch 2.6, ``torch.load`` refuses every pickled global outside an allow-list, and
mmengine 0.10.7 calls it without ``weights_only``. Runner checkpoints (``--resume``,
``load_from``) hold mmengine's ``HistoryBuffer`` (whose statistics methods are pickled as
``getattr(HistoryBuffer, 'mean')``) and numpy scalars and arrays. Instead of switching the
safety off (``TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD=1``), this module adds exactly those globals; a
checkpoint holding anything else still fails with torch's own ``Unsupported global`` error.
"""
import pickle
from typing import Any, Callable, List, Tuple, Union

import numpy as np
import torch
from mmengine.logging.history_buffer import HistoryBuffer

SafeGlobal = Union[Callable, Tuple[Callable, str]]
# Statistics every HistoryBuffer registers in __init__ (the class-level dict fills lazily).
_BUILTIN_STATISTICS = frozenset({'min', 'max', 'current', 'mean'})


def _history_buffer_getattr(obj: Any, name: str) -> Any:
    """``getattr`` limited to ``HistoryBuffer``'s registered statistics methods.

    It stands in for ``builtins.getattr`` inside the weights-only unpickler only, so a
    checkpoint cannot use it to reach arbitrary attributes.
    """
    allowed = _BUILTIN_STATISTICS | set(HistoryBuffer._statistics_methods)
    if obj is HistoryBuffer and name in allowed:
        return getattr(HistoryBuffer, name)
    raise pickle.UnpicklingError(
        f'weights_only load: getattr({obj!r}, {name!r}) is not allowed; the a2mim_plugin '
        'allow-list only admits HistoryBuffer statistics methods.')


def _numpy_globals() -> List[SafeGlobal]:
    """numpy pieces used by pickled arrays and scalars, under the numpy 1.x and 2.x paths."""
    multiarray = np.core.multiarray if not hasattr(np, '_core') else np._core.multiarray
    globals_: List[SafeGlobal] = [np.ndarray, np.dtype]
    for module in ('numpy.core.multiarray', 'numpy._core.multiarray'):
        globals_.append((multiarray._reconstruct, f'{module}._reconstruct'))
        globals_.append((multiarray.scalar, f'{module}.scalar'))
    dtype_classes = {type(np.dtype(code)) for code in np.typecodes['All'] if code not in 'OV'}
    globals_.extend(sorted(dtype_classes, key=lambda cls: cls.__name__))
    return globals_


def mmengine_checkpoint_globals() -> List[SafeGlobal]:
    """The allow-list that mmengine runner checkpoints need."""
    return [HistoryBuffer, (_history_buffer_getattr, 'builtins.getattr'), *_numpy_globals()]


def allow_mmengine_checkpoint_globals() -> None:
    """Register :func:`mmengine_checkpoint_globals` with ``torch.serialization``."""
    if hasattr(torch.serialization, 'add_safe_globals'):  # torch >= 2.4
        torch.serialization.add_safe_globals(mmengine_checkpoint_globals())
