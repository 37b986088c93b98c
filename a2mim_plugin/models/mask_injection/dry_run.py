"""The build-time dry run that finds and checks an injection point of a stock backbone.

One training-mode forward and backward pass on a random image tells, at the chosen module, the
feature layout and channel count (to create ``mask_token`` in its natural shape), the stride
(what ``model_patch_size`` must be), and whether the point can work at all: it runs exactly once
per step (not shared, not recomputed inside a ``with_cp`` block), it holds one feature tensor of
the image batch, and a change there reaches the backbone's output. The backbone's buffers,
train/eval modes, gradients and the global RNG states are restored afterwards, so building a
model with or without the dry run gives the same numbers.
"""
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import torch
from torch import nn

from .layout import FeatureLayout, Grid, guess_layout

PROBE_BATCH = 2


@dataclass(frozen=True)
class DryRunResult:
    """What the dry run found at the injection point.

    Attributes:
        layout: the feature layout there.
        channels: channels of the feature (the token's width).
        stride: input pixels per feature cell (the ``model_patch_size`` to use).
        output_shape: shape of the backbone's last output for one image.
        input_size: the square input size of the dry run.
    """

    layout: FeatureLayout
    channels: int
    stride: int
    output_shape: Tuple[int, ...]
    input_size: int


class _Refusal(Exception):
    """Raised inside the dry run's hook to stop the forward pass with a message."""


def find_hw_shape(values: Sequence[Any]) -> Optional[Grid]:
    """The first (h, w) pair of ints among ``values`` (Swin-style ``hw_shape`` arguments)."""
    for value in values:
        if isinstance(value, (tuple, list, torch.Size)) and len(value) == 2 and \
                all(isinstance(v, int) and not isinstance(v, bool) for v in value):
            return (int(value[0]), int(value[1]))
    return None


def split_feature(value: Any, point: str, on: str) -> Tuple[torch.Tensor, Optional[Grid]]:
    """The feature tensor of a module input (positional args) or output, and its hw_shape.

    Accepts a tensor, or a tuple whose first item is the tensor followed by non-tensor values
    (such as ``(x, hw_shape)``); anything else is several streams or branches.
    """
    if isinstance(value, torch.Tensor):
        return value, None
    if isinstance(value, (tuple, list)) and value and isinstance(value[0], torch.Tensor):
        rest = value[1:]
        if on == 'input' or not any(isinstance(v, torch.Tensor) for v in rest):
            return value[0], find_hw_shape(rest)
    kind = type(value).__name__ if not isinstance(value, (tuple, list)) else \
        f'{type(value).__name__} of {[type(v).__name__ for v in value]}'
    raise ValueError(
        f'{point}: its {on} is a {kind}, not one feature tensor (several streams or a list of '
        'branches cannot take a mask token). Set model.mask_token.at (and .on) to a module '
        'whose input or output is a single (B, C, h, w), (B, h, w, C) or (B, L, C) tensor.')


def dry_run(backbone: nn.Module, module: nn.Module, on: str, input_size: int,
            point: str, image_channels: int = 3) -> DryRunResult:
    """Run the backbone once forward and backward and report on the injection point.

    Args:
        backbone: the stock backbone.
        module: the submodule at the injection point.
        on: 'input' or 'output' of ``module``.
        input_size: side of the square random input.
        point: how messages name the point (e.g. "SwinTransformer 'stages.0' (input)").
        image_channels: channels of the random input image (3 for RGB).

    Returns:
        The layout, channels, stride and output shape found.

    Raises:
        ValueError: when the point cannot take the token; the message names the fix.
    """
    seen: List[Tuple[torch.Size, Optional[FeatureLayout], Optional[Grid]]] = []
    probe = torch.zeros((), requires_grad=True)
    gen = torch.Generator().manual_seed(0)

    def perturb(feats: torch.Tensor, hw: Optional[Grid]) -> torch.Tensor:
        """Record the feature and add ``probe * r`` at its patch positions."""
        if feats.shape[0] != PROBE_BATCH:
            raise _Refusal(
                f'{point}: the feature {tuple(feats.shape)} does not have the image batch '
                f'({PROBE_BATCH}) as its first dimension (the module folds the batch or '
                'carries another stream). Choose another model.mask_token.at.')
        layout, grid, reason = guess_layout(feats.shape, input_size, hw)
        if layout is None:
            raise _Refusal(
                f'{point}: {reason}, so a mask cannot be aligned with image patches there. '
                'Choose another model.mask_token.at, or set model.mask_token.input_size to the '
                'image size this backbone is built for.')
        seen.append((feats.shape, layout, grid))
        direction = torch.randn(feats.shape, generator=gen).to(feats)
        if layout.extra_tokens:
            direction[:, :layout.extra_tokens] = 0
        return feats + probe.to(feats) * direction

    def split(value: Any, side: str) -> Tuple[torch.Tensor, Optional[Grid]]:
        try:
            return split_feature(value, point, side)
        except ValueError as err:
            raise _Refusal(str(err)) from None

    def on_input(_module, args, kwargs):
        feats, hw = split(args, 'input')
        hw = hw or find_hw_shape(list(kwargs.values()))
        return (perturb(feats, hw), *args[1:]), kwargs

    def on_output(_module, _args, _kwargs, output):
        feats, hw = split(output, 'output')
        new = perturb(feats, hw)
        return new if isinstance(output, torch.Tensor) else type(output)((new, *output[1:]))

    hook: Callable = on_input if on == 'input' else on_output
    register = module.register_forward_pre_hook if on == 'input' else \
        module.register_forward_hook
    handle = register(hook, with_kwargs=True)
    try:
        with _restored(backbone):
            last = _forward_backward(backbone, input_size, gen, point, image_channels)
    except _Refusal as refusal:
        raise ValueError(str(refusal)) from None
    finally:
        handle.remove()

    if not seen:
        raise ValueError(f'{point} did not run in a forward pass of {type(backbone).__name__} '
                         '(a branch this configuration does not use?). Choose a module that '
                         'runs, e.g. one of those listed by print(backbone).')
    if len(seen) > 1:
        raise ValueError(
            f'{point} ran {len(seen)} times in one training step (forward and backward): the '
            'module is shared by several places (e.g. one activation layer reused) or sits '
            'inside a gradient-checkpointed block (with_cp=True) that is recomputed in the '
            'backward pass, so the token would be applied inconsistently. Point '
            'model.mask_token.at at a module that runs once, e.g. the stage or block that '
            'contains it, or set with_cp=False.')
    if probe.grad is None or probe.grad.item() == 0:
        raise ValueError(
            f'{point}: a change of the features there does not reach the backbone\'s output '
            'in the backward pass (nothing after it uses the patch positions, e.g. after the '
            'final norm of a class-token output; or the backward pass recomputes the layers '
            'instead of going through the point, as reversible layers do), so the mask token '
            'could not learn. Choose an earlier model.mask_token.at.')
    shape, layout, grid = seen[0]
    channels = int(shape[layout.channel_dim])
    return DryRunResult(layout=layout, channels=channels, stride=input_size // grid[0],
                        output_shape=tuple(last.shape[1:]), input_size=input_size)


def _forward_backward(backbone: nn.Module, input_size: int, gen: torch.Generator,
                      point: str, image_channels: int = 3) -> torch.Tensor:
    """Train-mode forward of a random (2, C, S, S) batch and backward of a random projection of
    the last output (a plain sum would be blind behind a final LayerNorm)."""
    first = next(iter(backbone.parameters()), None)
    device = first.device if first is not None else torch.device('cpu')
    dtype = first.dtype if first is not None and first.is_floating_point() else torch.float32
    x = torch.randn(PROBE_BATCH, image_channels, input_size, input_size,
                    generator=gen).to(device, dtype)
    try:
        outs = backbone(x)
    except _Refusal:
        raise
    except Exception as err:
        raise ValueError(
            f'The dry run of {type(backbone).__name__} on a {input_size}x{input_size} input, '
            f'made to find {point}, failed: {type(err).__name__}: {err}. Set '
            'model.mask_token.input_size to an input size this backbone accepts.') from err
    last = outs[-1] if isinstance(outs, (tuple, list)) else outs
    if not isinstance(last, torch.Tensor):
        name = type(backbone).__name__
        raise ValueError(
            f'{name} returns a {type(last).__name__} as its last output, not one feature tensor: '
            'the A2MIM decoder reads a single (B, C, h, w) map or (B, L, C) patch-token '
            'sequence. Set model.backbone so that its last output is one tensor (out_indices, '
            "out_type='featmap'); where no setting does (Conformer returns two pooled streams, "
            'the CNN and the transformer one, for every stage), use another backbone, e.g. '
            "ResNet, ConvNeXt or VisionTransformer with out_type='featmap' "
            '(docs/backbones.md lists the tested ones).')
    if last.requires_grad:
        weight = torch.randn(last.shape, generator=gen).to(last)
        (last * weight).sum().backward()
    return last


class _restored:
    """Context that restores a module's buffers, modes, gradients and the RNG states."""

    def __init__(self, module: nn.Module) -> None:
        self.module = module

    def __enter__(self) -> None:
        module = self.module
        self.modes: Dict[nn.Module, bool] = {m: m.training for m in module.modules()}
        self.buffers = {name: buf.detach().clone() for name, buf in module.named_buffers()}
        self.grads = {p: p.grad for p in module.parameters()}
        devices = sorted({p.device.index for p in module.parameters() if p.is_cuda})
        self.rng = torch.random.fork_rng(devices=devices)
        self.rng.__enter__()
        module.train()

    def __exit__(self, *exc) -> None:
        module = self.module
        self.rng.__exit__(None, None, None)
        with torch.no_grad():
            for name, buf in module.named_buffers():
                buf.copy_(self.buffers[name])
        for param, grad in self.grads.items():
            param.grad = grad
        for m, mode in self.modes.items():
            m.training = mode
