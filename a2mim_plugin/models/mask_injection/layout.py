"""Where the cells of a mask grid sit inside a feature tensor.

A2MIM (Li et al., ICML 2023, Sec. 3.2) adds its mask token to the features of masked positions
at one point of any encoder. Encoders hold those features in three layouts: maps
(B, C, h, w), channels-last maps (B, h, w, C) and token sequences (B, L, C) whose first
``L - h * w`` entries are class / distillation tokens. The layout at a point is decided from the
(h, w) grid of the mask and the token's channel count, never from a sequence length alone.
"""
import math
from dataclasses import dataclass
from typing import Optional, Sequence, Tuple

import torch

LAYOUTS = ('NCHW', 'NHWC', 'NLC')
# Leading class / distillation / register tokens a token sequence may carry before its patches.
MAX_EXTRA_TOKENS = 8

Grid = Tuple[int, int]


@dataclass(frozen=True)
class FeatureLayout:
    """How a (B, h, w) cell mask maps onto a feature tensor.

    Attributes:
        kind: 'NCHW', 'NHWC' or 'NLC'.
        extra_tokens: leading non-patch tokens of an 'NLC' sequence (left untouched).
    """

    kind: str
    extra_tokens: int = 0

    def token_shape(self, channels: int) -> Tuple[int, ...]:
        """Natural shape of ``mask_token``: (1, C, 1, 1), (1, 1, 1, C) or (1, 1, C)."""
        return {'NCHW': (1, channels, 1, 1), 'NHWC': (1, 1, 1, channels),
                'NLC': (1, 1, channels)}[self.kind]

    def gamma_shape(self, channels: int) -> Tuple[int, ...]:
        """Shape of ``mask_gamma``: (1, C, 1, 1) for maps, (C, ) for channels-last features."""
        return (1, channels, 1, 1) if self.kind == 'NCHW' else (channels, )

    @property
    def spatial_dims(self) -> Tuple[int, ...]:
        return {'NCHW': (2, 3), 'NHWC': (1, 2), 'NLC': (1, )}[self.kind]

    @property
    def channel_dim(self) -> int:
        return 1 if self.kind == 'NCHW' else -1

    def cell_weights(self, mask: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
        """The (B, h, w) mask broadcastable against the patch features of this layout."""
        if self.kind == 'NCHW':
            return mask.unsqueeze(1).to(dtype)  # (B, 1, h, w)
        if self.kind == 'NHWC':
            return mask.unsqueeze(-1).to(dtype)  # (B, h, w, 1)
        return mask.flatten(1).unsqueeze(-1).to(dtype)  # (B, h * w, 1)


def layout_of_token(token_shape: Sequence[int]) -> Optional[FeatureLayout]:
    """The layout a stored ``mask_token`` shape implies (None if it does not tell)."""
    shape = tuple(token_shape)
    if len(shape) == 4 and shape[0] == shape[2] == shape[3] == 1:
        return FeatureLayout('NCHW')
    if len(shape) == 4 and shape[:3] == (1, 1, 1):
        return FeatureLayout('NHWC')
    if len(shape) == 3 and shape[:2] == (1, 1):
        return FeatureLayout('NLC')
    return None


def match_layout(shape: Sequence[int], grid: Grid, channels: int, hw_shape: Optional[Grid],
                 expected: Optional[FeatureLayout]) -> Optional[FeatureLayout]:
    """The layout in which a feature tensor of ``shape`` holds the cells of ``grid``.

    Args:
        shape: the feature tensor's shape, batch first.
        grid: (h, w) of the mask.
        channels: the token's channel count.
        hw_shape: the (h, w) the module was given or returned next to a token sequence
            (Swin-style stages), if any.
        expected: the layout found when the injection was attached; an 'NLC' one fixes the
            number of leading extra tokens.

    Returns:
        The matching layout, or None when the tensor is not on ``grid``.
    """
    shape, grid = tuple(shape), tuple(grid)
    if len(shape) == 4:
        if shape[2:] == grid and shape[1] == channels:
            return FeatureLayout('NCHW')
        if shape[1:3] == grid and shape[3] == channels:
            return FeatureLayout('NHWC')
        return None
    if len(shape) != 3 or shape[2] != channels:
        return None
    if hw_shape is not None and tuple(hw_shape) != grid:
        return None
    extra = shape[1] - grid[0] * grid[1]
    if expected is not None and expected.kind == 'NLC':
        return expected if extra == expected.extra_tokens else None
    return FeatureLayout('NLC', extra) if 0 <= extra <= MAX_EXTRA_TOKENS else None


def feature_grid(shape: Sequence[int], hw_shape: Optional[Grid],
                 expected: Optional[FeatureLayout]) -> Optional[Grid]:
    """Best description of the spatial grid a feature tensor is on, for error messages."""
    shape = tuple(shape)
    if hw_shape is not None:
        return tuple(hw_shape)
    if len(shape) == 4:
        return shape[1:3] if expected is not None and expected.kind == 'NHWC' else shape[2:]
    if len(shape) == 3:
        extra = expected.extra_tokens if expected is not None else 0
        side = math.isqrt(max(shape[1] - extra, 0))
        return (side, side) if side * side == shape[1] - extra else None
    return None


def guess_layout(shape: Sequence[int], input_size: int, hw_shape: Optional[Grid]
                 ) -> Tuple[Optional[FeatureLayout], Optional[Grid], str]:
    """Layout of a feature seen in the dry run on a square ``input_size`` image.

    With no mask yet, the grid is the pair of dimensions that divides the input size into an
    integer stride (or the ``hw_shape`` given with a token sequence; or, for a plain sequence,
    the square number of tokens left after at most ``MAX_EXTRA_TOKENS`` leading ones).

    Returns:
        (layout, grid, reason): layout and grid are None when no layout fits, with the reason.
    """
    shape = tuple(shape)

    def integer_stride(side: int) -> bool:
        return 0 < side <= input_size and input_size % side == 0

    if len(shape) == 4:
        as_maps = shape[2] == shape[3] and integer_stride(shape[2])
        as_last = shape[1] == shape[2] and integer_stride(shape[1])
        if as_maps and as_last and shape[1] != shape[3]:
            return None, None, (f'the feature {shape} reads both as (B, C, h, w) and as '
                                '(B, h, w, C)')
        if as_maps:
            return FeatureLayout('NCHW'), shape[2:], ''
        if as_last:
            return FeatureLayout('NHWC'), shape[1:3], ''
        return None, None, (f'no two dimensions of the feature {shape} divide the '
                            f'{input_size} px input into an integer stride')
    if len(shape) == 3:
        if hw_shape is not None:
            h, w = hw_shape
            extra = shape[1] - h * w
            if h != w or not integer_stride(h) or not 0 <= extra <= MAX_EXTRA_TOKENS:
                return None, None, (f'the token sequence {shape} with hw_shape {tuple(hw_shape)} '
                                    f'is not on an integer-stride grid of the {input_size} px '
                                    'input')
            return FeatureLayout('NLC', extra), (h, w), ''
        for extra in range(min(MAX_EXTRA_TOKENS, shape[1]) + 1):
            side = math.isqrt(shape[1] - extra)
            if side * side == shape[1] - extra and integer_stride(side):
                return FeatureLayout('NLC', extra), (side, side), ''
        return None, None, (f'the {shape[1]} tokens of {shape} are not a square patch grid of '
                            f'the {input_size} px input at an integer stride (after at most '
                            f'{MAX_EXTRA_TOKENS} leading extra tokens)')
    return None, None, (f'the feature has shape {shape}; A2MIM injects into (B, C, h, w), '
                        '(B, h, w, C) or (B, L, C) features')
