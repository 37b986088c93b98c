"""Training-loop parts (hooks), registered into MMPretrain's ``HOOKS`` registry.

Importing this package also installs :mod:`.cuda_shim` (a no-op ``torch.cuda.set_device``
on machines without a CUDA device, so mmengine's slurm/pytorch launchers start on CPUs).
"""
from .cuda_shim import install_cpu_set_device_shim
from .hooks import (AtomicCheckpointHook, AutoResumeHook, PreemptionHook,
                    KNNEvalHook, MaskPipelineCheckHook, NonFiniteLossHook,
                    OptimStepEMAHook, CompileReadyHook, FastPathsHook, ReconstructionVisHook,
                    RNGStateHook,
                    TotalBatchCheckHook)

install_cpu_set_device_shim()

# Hook names only (tests/test_registry.py checks that each one resolves in HOOKS).
__all__ = ['AtomicCheckpointHook', 'AutoResumeHook', 'PreemptionHook',
           'KNNEvalHook', 'MaskPipelineCheckHook', 'NonFiniteLossHook',
           'OptimStepEMAHook', 'CompileReadyHook', 'FastPathsHook', 'ReconstructionVisHook',
           'RNGStateHook',
           'TotalBatchCheckHook']
