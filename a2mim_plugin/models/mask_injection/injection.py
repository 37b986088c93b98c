"""A2MIM's mask token at a named module of any backbone (Li et al., ICML 2023, Sec. 3.2).

The paper's claim is architecture-agnostic masked image modeling: the token goes on the
features of masked positions at one point of the encoder, whatever the encoder is. Here the
point is a module path inside a *stock* backbone (``get_submodule`` syntax) and whether the
token goes on that module's input or output. A forward (pre-)hook on that module applies it
while :meth:`MaskTokenInjection.run` holds a mask for one forward pass; outside that call the
backbone is exactly the stock one. ``mask_token`` / ``mask_gamma`` are parameters of the
backbone module itself, so its checkpoints load into the stock backbone downstream.
"""
from typing import Any, Callable, Optional, Tuple

import torch
from torch import nn

from .dry_run import DryRunResult, dry_run, find_hw_shape, split_feature
from .layout import FeatureLayout, Grid, feature_grid, layout_of_token, match_layout
from .token import apply_mask_token, check_token_args, init_mask_token, register_mask_params

INJECT_SIDES = ('input', 'output')


def loads_pretrained(init_cfg: Any) -> bool:
    """Whether an ``init_cfg`` (dict or list of dicts) loads a checkpoint ('Pretrained')."""
    cfgs = init_cfg if isinstance(init_cfg, (list, tuple)) else [init_cfg]
    return any(isinstance(c, dict) and str(c.get('type', '')).split('.')[-1] == 'Pretrained'
               for c in cfgs)


def default_input_size(backbone: nn.Module) -> int:
    """The square input size a backbone declares, else 224.

    An MMPretrain backbone declares ``img_size`` (on itself or its ``patch_embed``). A timm
    model (``TIMMBackbone.timm_model``, or the model inside timm's ``feature_cls='getter'``
    wrapper) declares the size its ``patch_embed`` was built for (the ``img_size`` kwarg),
    else the ``pretrained_cfg['input_size']`` of its model name.
    """
    timm_model = getattr(backbone, 'timm_model', None)
    timm_models = [m for m in (timm_model, getattr(timm_model, 'model', None))
                   if isinstance(m, nn.Module)]
    for owner in (backbone, *timm_models):
        for holder in (owner, getattr(owner, 'patch_embed', None)):
            for name in ('img_size', 'init_input_size'):
                value = getattr(holder, name, None)
                if isinstance(value, int) and not isinstance(value, bool):
                    return value
                if isinstance(value, (tuple, list)) and len(value) == 2 and \
                        value[0] == value[1]:
                    return int(value[0])
    for owner in timm_models:
        cfg = getattr(owner, 'pretrained_cfg', None)
        size = cfg.get('input_size') if isinstance(cfg, dict) else None
        if isinstance(size, (tuple, list)) and len(size) == 3 and size[1] == size[2]:
            return int(size[1])
    return 224


def find_injection_module(backbone: nn.Module, at: str) -> nn.Module:
    """``backbone.get_submodule(at)`` with an error that lists the backbone's children."""
    children = [name for name, _ in backbone.named_children()]
    if not isinstance(at, str) or not at:
        raise ValueError(f'model.mask_token.at must name a module inside '
                         f'{type(backbone).__name__} (get_submodule syntax, e.g. '
                         f'{children[:1]}), got {at!r}. Its top-level modules: {children}.')
    try:
        return backbone.get_submodule(at)
    except AttributeError:
        raise ValueError(
            f'model.mask_token.at={at!r}: {type(backbone).__name__} has no module {at!r}. Its '
            f'top-level modules are {children}; give a dotted path as for '
            'backbone.get_submodule(), e.g. "stages.0" or "layer4".') from None


class MaskTokenInjection:
    """Applies the mask token at one module of a backbone during masked forward passes.

    Attach once, at build time; then ``run(backbone, x, mask)`` is the masked forward pass and
    ``backbone(x)`` the plain one. No global state: the mask lives on this object for the
    duration of ``run`` only (cleared also on exceptions), and ``copy.deepcopy`` of the
    backbone (EMA, teachers) copies the injection with it.

    Args:
        backbone: the backbone; ``mask_token`` / ``mask_gamma`` are registered on it.
        at: path of the module inside ``backbone`` (``get_submodule`` syntax).
        on: 'input' (the module's first positional argument) or 'output'.
        kind: token mode: 'learnable', 'zero', 'randn' (fixed N(0, 0.02)), 'mean' (batch-mean
            feature), 'instance_mean' (each sample's mean feature) or None (no token).
        replace: substitute the token (SimMIM) instead of adding it (A2MIM).
        mask_init: initial per-channel ``mask_gamma`` that scales masked features before the
            token is added (1e-6 in the official CNN rows); 0 creates no gamma.
        token_init: 'trunc_normal' (std 0.02) or 'zeros', for a learnable token.
        input_size: side of the random image of the build-time dry run that finds the layout,
            channels and stride at ``at`` and refuses points that cannot work. Defaults to the
            backbone's ``img_size``, else 224.
        channels: the token's channel count when the caller knows it (presets, weight tools);
            with ``layout`` it skips the dry run.
        layout: the feature layout at ``at`` when the caller knows it.
        where: how error messages name the point (defaults to "at '<at>' (<on>)").
        fix: the alternative fix error messages propose next to ``model_patch_size``
            (``{mask_stride}`` is replaced with the stride the mask is made for).
        image_channels: channels of the images (the dry run's random input). Defaults to 3.
    """

    def __init__(self, backbone: nn.Module, at: str, on: str = 'input',
                 kind: Optional[str] = 'learnable', replace: bool = False,
                 mask_init: float = 0., token_init: str = 'trunc_normal',
                 input_size: Optional[int] = None, *, channels: Optional[int] = None,
                 layout: Optional[FeatureLayout] = None, where: Optional[str] = None,
                 fix: Optional[str] = None, image_channels: int = 3) -> None:
        if on not in INJECT_SIDES:
            raise ValueError(f"model.mask_token.on must be one of {INJECT_SIDES}, got {on!r}; set "
                             "model.mask_token.on='input' or 'output'.")
        check_token_args(kind, mask_init, token_init)
        module = find_injection_module(backbone, at)
        self.at, self.on, self.kind, self.replace = at, on, kind, replace
        self.token_init = token_init
        self.where = where or f"at '{at}' ({on})"
        self.fix = fix or ('or move model.mask_token.at to a module at stride {mask_stride} (the '
                           'model_patch_size the mask is made for)')
        self.owner_name = type(backbone).__name__
        self.dry_run: Optional[DryRunResult] = None
        if channels is None or layout is None:
            size = input_size or default_input_size(backbone)
            self.dry_run = dry_run(backbone, module, on, size,
                                   f"{self.owner_name} module '{at}' ({on})", image_channels)
            channels, layout = self.dry_run.channels, self.dry_run.layout
        self.channels, self.layout = int(channels), layout
        register_mask_params(backbone, self.channels, layout, kind, replace, mask_init)
        self._owner = backbone
        self._mask: Optional[torch.Tensor] = None
        self._calls = 0
        self._input_hw: Tuple[int, ...] = ()
        if on == 'input':
            module.register_forward_pre_hook(self._on_input, with_kwargs=True)
        else:
            module.register_forward_hook(self._on_output, with_kwargs=True)
        backbone.mask_injection = self

    @classmethod
    def from_state(cls, backbone: nn.Module, spec: dict, token: torch.Tensor
                   ) -> 'MaskTokenInjection':
        """Attach ``spec`` with the channels and layout of a stored ``mask_token`` (no dry
        run; for loading checkpoints)."""
        layout = layout_of_token(token.shape)
        if layout is None:
            raise ValueError(f'mask_token of shape {tuple(token.shape)} is not (1, C, 1, 1), '
                             '(1, 1, 1, C) or (1, 1, C), so the checkpoint was not written by '
                             'an A2MIM model of this plugin; convert official checkpoints with '
                             'tools/convert_official.py first.')
        return cls(backbone, **spec, channels=token.numel(), layout=layout)

    # ----------------------------------------------------------------------------------------
    def run(self, forward: Callable[[torch.Tensor], Any], x: torch.Tensor,
            mask: Optional[torch.Tensor]) -> Any:
        """``forward(x)`` with the token applied at the masked cells of ``mask``.

        Args:
            forward: the backbone (or its parent ``forward``).
            x: (B, 3, H, W) images.
            mask: (B, h, w) mask on the grid of the injection point, 1 = masked; None runs
                the plain backbone.
        """
        if mask is None:
            return forward(x)
        if mask.dim() != 3:
            raise ValueError(f'{self.owner_name} expects a (B, h, w) mask, got shape '
                             f'{tuple(mask.shape)}; make one (h, w) mask per image with '
                             "dict(type='SimMIMMaskGenerator') in the pipeline.")
        self._mask, self._calls, self._input_hw = mask, 0, tuple(x.shape[-2:])
        try:
            out = forward(x)
            calls = self._calls
        finally:
            self._mask = None
        if calls != 1:
            raise RuntimeError(
                f'{self.owner_name}: the injection point {self.where} ran {calls} times in '
                'one masked forward pass (expected once), so the mask token was '
                f'{"not applied" if calls == 0 else "applied inconsistently"}. Choose a module '
                'that runs exactly once per forward pass.')
        return out

    def init_weights(self, init_cfg: Any = None) -> None:
        """Initialise the token, unless ``init_cfg`` loads a checkpoint (which holds it)."""
        if not loads_pretrained(init_cfg):
            init_mask_token(self._owner, self.kind, self.token_init)

    # ----------------------------------------------------------------------------------------
    def _on_input(self, _module: nn.Module, args: tuple, kwargs: dict):
        if self._mask is None:
            return None
        feats, hw = split_feature(args, f"{self.owner_name} module '{self.at}'", 'input')
        hw = hw or find_hw_shape(list(kwargs.values()))
        return (self._inject(feats, hw), *args[1:]), kwargs

    def _on_output(self, _module: nn.Module, _args: tuple, _kwargs: dict, output: Any):
        if self._mask is None:
            return None
        feats, hw = split_feature(output, f"{self.owner_name} module '{self.at}'", 'output')
        new = self._inject(feats, hw)
        return new if isinstance(output, torch.Tensor) else type(output)((new, *output[1:]))

    def _inject(self, feats: torch.Tensor, hw: Optional[Grid]) -> torch.Tensor:
        self._calls += 1
        mask = self._mask
        layout = match_layout(feats.shape, mask.shape[-2:], self.channels, hw, self.layout)
        if layout is None or feats.shape[0] != mask.shape[0]:
            raise ValueError(self._mismatch(feats, hw))
        token = self._owner.mask_token
        gamma = self._owner.mask_gamma
        n = layout.extra_tokens
        if n == 0:
            return apply_mask_token(feats, mask, layout, self.kind, token, gamma, self.replace)
        patches = apply_mask_token(feats[:, n:], mask, layout, self.kind, token, gamma,
                                   self.replace)
        return torch.cat((feats[:, :n], patches), dim=1)

    def _mismatch(self, feats: torch.Tensor, hw: Optional[Grid]) -> str:
        """The message for a mask that does not fit the features at the point."""
        mask, shape = self._mask, tuple(feats.shape)
        h, w = mask.shape[-2:]
        if shape[0] != mask.shape[0]:
            return (f'{self.owner_name}: the mask holds {mask.shape[0]} images, the features '
                    f'{self.where} {shape[0]}: the module folds the batch; choose another '
                    'model.mask_token.at.')
        grid = feature_grid(shape, hw, self.layout)
        if grid is None:
            return (f'{self.owner_name}: the {h}x{w} mask does not match the features '
                    f'{shape} {self.where}; check SimMIMMaskGenerator.input_size (the crop) and '
                    'model_patch_size (the stride at model.mask_token.at).')
        if tuple(grid) == (h, w):
            return (f'{self.owner_name}: the features {self.where} have shape {shape}, but the '
                    f'mask token was built for {self.channels} channels (the width there changes '
                    'with the input); choose a model.mask_token.at of fixed width.')
        H, W = self._input_hw
        stride = H // grid[0] if grid[0] and H % grid[0] == 0 else H / grid[0]
        # The mask is made for another stride (model_patch_size) or for another image size
        # (SimMIMMaskGenerator.input_size vs the crop); only the pipeline knows which, so the
        # message gives the generator settings that fit this input and point.
        tail = f', {self.fix.format(mask_stride=H // h)}' if h and H % h == 0 else \
            f' (a {h}x{w} mask does not tile a {H}x{W} image: its input_size is not the crop)'
        return (f'{self.owner_name}: the {h}x{w} mask does not match the {grid[0]}x{grid[1]} '
                f'feature grid {self.where} (stride {stride} for a {H}x{W} input). Set '
                f'model_patch_size={stride} and input_size={H} (the crop) in '
                f'SimMIMMaskGenerator{tail}.')


def find_mask_injection(backbone: nn.Module) -> Optional[MaskTokenInjection]:
    """The injection attached to ``backbone``, if any."""
    injection = getattr(backbone, 'mask_injection', None)
    return injection if isinstance(injection, MaskTokenInjection) else None
