"""Make a built model traceable by ``torch.compile`` in one graph, without changing its numerics.

MMPretrain's ``VisionTransformer`` and ``BEiTViT`` give every block its drop-path rate from
``np.linspace``, so mmcv's ``DropPath`` holds a NumPy float. Dynamo treats NumPy scalars as
tensors, which makes ``if drop_prob == 0.`` in ``mmcv.cnn.bricks.drop.drop_path`` a
data-dependent branch: one graph break per block. Converting such attributes to the Python
number of the same value removes the breaks and leaves every result bit for bit the same (a
NumPy float64 and a Python float are the same IEEE double; torch treats both as scalars).
"""
from typing import List

import numpy as np
from torch import nn


def python_scalar_attributes(model: nn.Module) -> List[str]:
    """Replace every NumPy scalar attribute of ``model``'s modules by the equal Python scalar.

    Only plain attributes in a module's ``__dict__`` are touched (never parameters, buffers
    or submodules), so the state dict and the checkpoint keys do not change.

    Args:
        model: a built model; changed in place.

    Returns:
        The converted attributes as ``'<module path>.<attribute>'`` (empty when none).
    """
    converted = []
    for path, module in model.named_modules():
        for name, value in list(vars(module).items()):
            if isinstance(value, np.generic) and np.ndim(value) == 0 and \
                    isinstance(value, (np.bool_, np.number)):
                setattr(module, name, value.item())
                converted.append(f'{path}.{name}' if path else name)
    return converted
