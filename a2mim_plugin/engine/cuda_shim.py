"""Let mmengine's ``slurm`` and ``pytorch`` launchers start on machines without a GPU.

mmengine 0.10.7 (``mmengine.dist.utils._init_dist_slurm`` and ``_init_dist_pytorch``) calls
``torch.cuda.set_device(local_rank)`` before ``init_process_group``, whatever the backend.
On a machine without a CUDA device that call raises (``Found no NVIDIA driver`` with a CUDA
build of torch, ``AttributeError ... _cuda_setDevice`` with a CPU build), so a CPU-only
``--launcher slurm`` / ``--launcher pytorch`` run dies before its first iteration.

:func:`install_cpu_set_device_shim` runs when ``a2mim_plugin`` is imported. MMPretrain's
``tools/train.py`` imports it through ``custom_imports`` inside ``Config.fromfile``, which
comes before ``Runner.from_cfg`` initialises the distributed environment, so the shim is in
place in time. It only acts when no CUDA device exists:

* with a CUDA device at import time nothing is replaced;
* the replacement asks again at every call and hands the call to the original
  ``torch.cuda.set_device`` as soon as a device is visible, so it never hides a real GPU.

Without a GPU the distributed backend must be one that works on CPU tensors: set
``env_cfg = dict(dist_cfg=dict(backend='gloo'))`` (MMPretrain's default runtime says 'nccl').
"""
import functools
import logging

import torch

_ORIGINAL_SET_DEVICE = torch.cuda.set_device
_SHIM_MARK = '_a2mim_cpu_shim'


def cuda_device_present() -> bool:
    """True when torch sees at least one usable CUDA device."""
    return bool(torch.cuda.is_available()) and torch.cuda.device_count() > 0


def _set_device_or_skip(device) -> None:
    """``torch.cuda.set_device`` that does nothing while no CUDA device exists."""
    if cuda_device_present():
        return _ORIGINAL_SET_DEVICE(device)
    logging.getLogger(__name__).debug(
        'a2mim_plugin: no CUDA device, torch.cuda.set_device(%r) skipped', device)
    return None


def shim_installed() -> bool:
    """Whether ``torch.cuda.set_device`` is currently the CPU shim."""
    return getattr(torch.cuda.set_device, _SHIM_MARK, False)


def install_cpu_set_device_shim() -> bool:
    """Make ``torch.cuda.set_device`` a no-op, only when this machine has no CUDA device.

    Returns:
        True if the shim is installed after the call (it was needed), False otherwise.
    """
    if shim_installed():
        return True
    if cuda_device_present():
        return False

    @functools.wraps(_ORIGINAL_SET_DEVICE)
    def set_device(device) -> None:
        return _set_device_or_skip(device)

    setattr(set_device, _SHIM_MARK, True)
    torch.cuda.set_device = set_device
    return True


def uninstall_cpu_set_device_shim() -> None:
    """Put the original ``torch.cuda.set_device`` back (for tests)."""
    torch.cuda.set_device = _ORIGINAL_SET_DEVICE
