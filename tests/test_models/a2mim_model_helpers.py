"""Tiny model configs, masks and an independent reference of the official A2MIM head loss.

Shared by the model tests in this folder (imported by module name: pytest's default ``prepend``
import mode puts this folder on ``sys.path``).
"""
import copy
from typing import Dict, Optional

import torch
from mmpretrain.registry import MODELS
from mmpretrain.structures import DataSample

IMG = 64  # px; every tiny backbone below runs at 64 x 64
VIT_ARCH = dict(embed_dims=64, num_layers=4, num_heads=2, feedforward_channels=128)

# family -> (base config, {mask_layer: (stride at the injection point, channels there)},
#            output shape of one 64-px image)
FAMILIES: Dict[str, dict] = {
    'A2MIMViT': dict(
        cfg=dict(type='A2MIMViT', arch=VIT_ARCH, img_size=IMG, patch_size=16),
        layers={k: (16, 64) for k in range(4)},
        out_shape=(64, 4, 4)),
    'A2MIMPlainViT': dict(
        cfg=dict(type='A2MIMPlainViT', arch=VIT_ARCH, img_size=IMG, patch_size=16),
        layers={k: (16, 64) for k in range(4)},
        out_shape=(64, 4, 4)),
    'A2MIMResNet': dict(
        cfg=dict(type='A2MIMResNet', depth=18),
        layers={0: (4, 64), 1: (4, 64), 2: (8, 128), 3: (16, 256)},
        out_shape=(512, 2, 2)),
    'A2MIMConvNeXt': dict(
        cfg=dict(type='A2MIMConvNeXt', arch='atto'),
        layers={0: (4, 40), 1: (8, 80), 2: (16, 160), 3: (32, 320)},
        out_shape=(320, 2, 2)),
}

FAMILY_LAYERS = [(family, k) for family, spec in FAMILIES.items() for k in spec['layers']]


def build_backbone(family: str, init: bool = True, **kwargs) -> torch.nn.Module:
    """Build a tiny backbone of ``family`` (``init_weights()`` applied unless ``init=False``)."""
    cfg = dict(FAMILIES[family]['cfg'])
    cfg.update(kwargs)
    model = MODELS.build(cfg)
    if init:
        model.init_weights()
    return model


def random_mask(batch: int, grid: int, seed: int = 0) -> torch.Tensor:
    """(B, grid, grid) int64 mask, about half masked, each sample with both kinds of cells."""
    gen = torch.Generator().manual_seed(seed)
    mask = (torch.rand(batch, grid, grid, generator=gen) < 0.5).long()
    mask[:, 0, 0] = 1
    mask[:, -1, -1] = 0
    return mask


def injection_module(model: torch.nn.Module, family: str, mask_layer: int) -> torch.nn.Module:
    """The module whose input is (or contains, for ViTs) the output of the injection.

    ResNet: ``res_layers[k]``; ConvNeXt: ``stages[k]``; ViT: the first block run after the
    injection (block 0 for ``mask_layer`` 0 and 1, block ``k - 1`` otherwise), whose input
    holds the cls token followed by the patch tokens.
    """
    if family == 'A2MIMResNet':
        return getattr(model, model.res_layers[mask_layer])
    if family == 'A2MIMConvNeXt':
        return model.stages[mask_layer]
    return model.layers[max(mask_layer - 1, 0)]


def capture_input(module: torch.nn.Module, fn):
    """Run ``fn()`` and return (its result, a clone of the first positional input of module)."""
    seen = []

    def hook(_module, args):
        seen.append(args[0].detach().clone())

    handle = module.register_forward_pre_hook(hook)
    try:
        result = fn()
    finally:
        handle.remove()
    assert len(seen) == 1
    return result, seen[0]


def record_feature(module: torch.nn.Module, on: str, store: list):
    """Append ``module``'s first input (``on='input'``) or its output (the first item of a
    tuple output) to ``store`` on every call; hooks registered after the injection's own see
    the injected feature. Returns the hook handle."""
    if on == 'input':
        return module.register_forward_pre_hook(lambda m, a: store.append(a[0].detach()))
    return module.register_forward_hook(
        lambda m, a, o: store.append((o[0] if isinstance(o, (tuple, list)) else o).detach()))


def pixel_mask(mask: torch.Tensor, size: int) -> torch.Tensor:
    """(B, h, w) -> (B, 1, H, W) float nearest upsampling (written independently of the plugin)."""
    s = size // mask.shape[-1]
    return mask.float().repeat_interleave(s, 1).repeat_interleave(s, 2).unsqueeze(1)


def reference_head_loss(pred: torch.Tensor,
                        target: torch.Tensor,
                        mask: torch.Tensor,
                        spatial: str = 'l1',
                        alpha: float = 0.2,
                        gamma: float = 1.0,
                        unmask_weight: float = 0.,
                        fft_weight: float = 0.,
                        fft_focal: bool = False,
                        fft_unmask_replace: Optional[str] = None,
                        fft_unmask_weight: float = 0.,
                        fft_reweight: bool = False) -> torch.Tensor:
    """The official A2MIMHead total loss (spec section 4.5), in float64, per-image FFTs.

    Written from the pseudocode, without the plugin: per-image spectra are averaged over the
    batch (no batch-mean-image shortcut), the complex difference goes through ``abs()``.
    """
    p, t = pred.double(), target.double()
    M = pixel_mask(mask, t.shape[-1]).double()

    def ell(abs_diff):
        if spatial == 'l1':
            return abs_diff
        return abs_diff * (2 * torch.sigmoid(alpha * abs_diff) - 1)**gamma

    Ms = M + (1 - M) * unmask_weight
    total = (ell((p - t).abs()) * Ms).sum() / (Ms.sum() + 1e-5) / 3
    if fft_weight > 0:
        mode = fft_unmask_replace
        if mode is None and unmask_weight < 1:
            mode = 'target'
        p_f = p
        if mode is not None and fft_unmask_weight < 1:
            r = {
                'target': lambda: t,
                'prediction': lambda: p.detach(),
                'mean': lambda: t.mean((2, 3), keepdim=True).expand_as(t),
                'mixed': lambda: 0.5 * p.detach() + 0.5 * t,
            }[mode]()
            Mf = M + (1 - M) * fft_unmask_weight
            p_f = p * Mf + r * (1 - Mf)
        Fp = torch.fft.fft2(p_f, norm='ortho')  # B x C x H x W, one FFT per image
        Ft = torch.fft.fft2(t, norm='ortho')
        if fft_focal:
            diff = Fp.mean(0) - Ft.mean(0)
            D = diff.real**2 + diff.imag**2
            W = torch.log1p(D.sqrt())
            W = (W / W.max()).nan_to_num(0.).clamp(0., 1.).detach()
            l_f = (W * D).mean()
        else:
            ell_f = ell((Fp - Ft).abs())
            l_f = (ell_f.detach() * ell_f).mean() if fft_reweight else ell_f.mean()
        total = total + fft_weight * l_f
    return total


# ------------------------------------------------------------------------------------------
# The zoo check: A2MIM on a stock backbone (MMPretrain's own in test_zoo.py, timm's in
# test_zoo_timm.py). ``case`` has ``backbone``, ``at``, ``on``, ``stride``, ``decoder`` and
# ``size`` (zoo_cases.ZooCase).
# ------------------------------------------------------------------------------------------
MASK_KEYS = {'mask_token', 'mask_gamma'}


def build_seeded(cfg: dict) -> torch.nn.Module:
    """``MODELS.build`` of a copy of ``cfg`` after ``torch.manual_seed(0)``."""
    torch.manual_seed(0)
    return MODELS.build(copy.deepcopy(cfg))


def zoo_a2mim_cfg(case, input_size: Optional[int]) -> dict:
    """The A2MIM config a user writes for ``case`` (``input_size=None``: the dry run uses the
    size the backbone declares)."""
    in_channels, encoder_stride = case.decoder
    return dict(
        type='A2MIM', backbone=case.backbone,
        mask_token=dict(at=case.at, on=case.on, mask_init=1e-6, input_size=input_size),
        neck=dict(type='A2MIMLinearDecoder', in_channels=in_channels,
                  encoder_stride=encoder_stride),
        head=dict(type='A2MIMHead', loss=dict(type='ElementwiseL1Loss'), fft_weight=0.5,
                  fft_focal=True, fft_unmask_replace='mixed'))


def _cell_change(plain: torch.Tensor, injected: torch.Tensor, layout, side: int
                 ) -> torch.Tensor:
    """(B, h, w) absolute change per mask cell between two features at the point; leading
    class tokens must stay untouched."""
    diff = (injected - plain).abs()
    if layout.kind == 'NCHW':
        return diff.sum(1)
    if layout.kind == 'NHWC':
        return diff.sum(-1)
    n = layout.extra_tokens
    assert torch.equal(injected[:, :n], plain[:, :n]), 'a class token was changed'
    return diff[:, n:].sum(-1).reshape(diff.shape[0], side, side)


def _load_result(stock: torch.nn.Module, weights) -> tuple:
    """(missing, unexpected) keys of a non-strict load of ``weights`` (default: the stock
    backbone's own state dict) into ``stock``. A strict load is the same as a stock-to-stock
    load: no unexpected key, and missing only what the class itself drops while loading
    (SwinTransformerV2 re-creates its relative-position buffers)."""
    weights = dict(stock.state_dict() if weights is None else weights)
    result = stock.load_state_dict(weights, strict=False)
    return sorted(result.missing_keys), sorted(result.unexpected_keys)


def check_a2mim_step_on_stock_backbone(case, input_size: Optional[int]) -> torch.nn.Module:
    """The zoo contract on one stock backbone; returns the built A2MIM model.

    The dry run finds the stride of the point; one training step gives a finite positive loss
    and a gradient on ``mask_token`` / ``mask_gamma``; no mask and an all-zero mask are the
    stock backbone exactly; the token changes the features at the point at masked cells only;
    the backbone's state dict is the stock one plus the two mask keys and loads into the stock
    backbone as the stock one does.
    """
    model = build_seeded(zoo_a2mim_cfg(case, input_size))
    model.init_weights()
    backbone, injection = model.backbone, model.mask_injection
    assert type(backbone).__name__ == case.backbone['type']  # stock, no plugin class
    assert injection.dry_run.stride == case.stride, 'model_patch_size of the point'
    side = case.size // case.stride
    x = torch.randn(2, 3, case.size, case.size, generator=torch.Generator().manual_seed(1))
    mask = random_mask(2, side).float()

    # One training step through the algorithm, the decoder and the head.
    model.train()
    losses = model.loss(x, [DataSample().set_mask(m) for m in mask])
    total = sum(losses.values())
    assert set(losses) == {'loss_spatial', 'loss_fourier'}
    assert torch.isfinite(total) and total > 0
    total.backward()
    for key in MASK_KEYS:
        grad = getattr(backbone, key).grad
        assert grad is not None and torch.isfinite(grad).all() and grad.abs().sum() > 0, key

    # The checkpoint: stock keys plus the two mask keys, loading strictly into the stock class.
    stock = build_seeded(case.backbone)
    state = backbone.state_dict()
    assert set(state) == set(stock.state_dict()) | MASK_KEYS
    weights = {k: v for k, v in state.items() if k not in MASK_KEYS}
    assert _load_result(stock, weights) == _load_result(build_seeded(case.backbone), None)

    model.eval(), stock.eval()
    point = backbone.get_submodule(case.at)
    with torch.no_grad():
        plain = stock(x)[-1]
        assert torch.equal(backbone(x)[-1], plain)  # no mask: the plain backbone
        assert torch.equal(injection.run(backbone, x, torch.zeros_like(mask))[-1], plain)
        feats = []
        handle = record_feature(point, case.on, feats)
        backbone(x)
        masked = injection.run(backbone, x, mask)[-1]
        handle.remove()
    assert not torch.equal(masked, plain)
    change = _cell_change(feats[0], feats[1], injection.layout, side)
    assert (change[mask == 0] == 0).all(), 'the token changed a visible cell'
    assert (change[mask == 1] > 0).all(), 'a masked cell did not get the token'
    return model
