"""A per-image cache of interaction results, so an interrupted analysis resumes where it stopped
and a run with more images or models reuses what is already computed."""
import hashlib
import io
import json
import os
from pathlib import Path
from typing import Optional, Union

import numpy as np
import torch

from ..utils.atomic_io import atomic_write_bytes
from .estimator import ImageInteractions, InteractionSettings


def model_fingerprint(model: torch.nn.Module) -> str:
    """Hash of what the model computes: its structure (``repr``, which carries every module's
    settings), the data preprocessor's plain settings (e.g. the BGR-to-RGB flag) and every
    parameter and buffer (names, shapes, dtypes, values).

    Buffers include non-persistent ones such as the data preprocessor's ``mean`` / ``std``, so
    two models that normalise differently do not share cache entries.
    """
    digest = hashlib.sha1(f'{type(model).__qualname__}\n{model!r}\n'.encode())
    preprocessor = getattr(model, 'data_preprocessor', None)
    if preprocessor is not None:
        plain = sorted((k, v) for k, v in vars(preprocessor).items()
                       if k != 'training' and isinstance(v, (bool, int, float, str)))
        digest.update(repr(plain).encode())
    tensors = sorted(list(model.named_parameters()) + list(model.named_buffers()))
    for name, tensor in tensors:
        data = tensor.detach().cpu().contiguous()
        digest.update(f'{name}:{tuple(data.shape)}:{data.dtype};'.encode())
        digest.update(data.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


class InteractionCache:
    """One ``.npz`` per (model, settings, image) under ``root``, written atomically.

    Layout: ``root/<model hash>/<settings hash>/<image hash>.npz`` and, for people reading the
    folder, ``settings.json`` beside the images' files.

    Args:
        root: the cache directory (created on the first write).
    """

    def __init__(self, root: Union[str, os.PathLike]) -> None:
        self.root = Path(root)

    def _path(self, model_key: str, settings: InteractionSettings, image_key: str) -> Path:
        return self.root / model_key[:16] / settings.fingerprint()[:16] / f'{image_key[:40]}.npz'

    def load(self, model_key: str, settings: InteractionSettings,
             image_key: str) -> Optional[ImageInteractions]:
        """The stored result, or None when this image was not analysed with these settings."""
        path = self._path(model_key, settings, image_key)
        if not path.is_file():
            return None
        with np.load(path) as data:
            result = ImageInteractions(data['orders'], data['pairs'], data['values'])
        if tuple(result.orders.tolist()) != settings.orders:
            return None
        return result

    def save(self, model_key: str, settings: InteractionSettings, image_key: str,
             result: ImageInteractions) -> None:
        """Store one image's result (atomically: a killed run never leaves half a file)."""
        path = self._path(model_key, settings, image_key)
        buffer = io.BytesIO()
        np.savez(buffer, orders=result.orders, pairs=result.pairs, values=result.values)
        atomic_write_bytes(buffer.getvalue(), str(path))
        meta = path.parent / 'settings.json'
        if not meta.exists():
            atomic_write_bytes(json.dumps(settings.as_dict(), indent=2).encode(), str(meta))
