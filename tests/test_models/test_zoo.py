"""A2MIM on MMPretrain's model zoo: one training step on each stock backbone of ``zoo_cases``.

Every case builds the real ``A2MIM`` through the registry with a *stock* MMPretrain 1.2.0
backbone, ``model.mask_token=dict(at=..., on=...)``, the linear decoder and the head, then
checks the contract of the paper's architecture-agnostic claim (Li et al., ICML 2023): the
dry run finds the stride of the point; one training step gives a finite loss and a gradient
on the token; an all-zero mask is the plain backbone exactly; the token changes the features
at the point at masked cells only; the backbone's checkpoint is the stock one plus
``mask_token`` / ``mask_gamma`` and loads strictly into the stock backbone. The refusals
check that the points which cannot work say so and name the fix.
"""
import copy
from pathlib import Path

import pytest
import torch
from mmpretrain.registry import MODELS
from mmpretrain.structures import DataSample
from torch import nn

import a2mim_plugin  # noqa: F401  (registers the plugin)

from a2mim_model_helpers import random_mask, record_feature
from zoo_cases import REFUSALS, ZOO, ZooCase

MASK_KEYS = {'mask_token', 'mask_gamma'}
README = Path(__file__).resolve().parents[2] / 'README.md'


def _build(cfg: dict) -> nn.Module:
    torch.manual_seed(0)
    return MODELS.build(copy.deepcopy(cfg))


def _a2mim_cfg(case: ZooCase) -> dict:
    in_channels, encoder_stride = case.decoder
    return dict(
        type='A2MIM', backbone=case.backbone,
        mask_token=dict(at=case.at, on=case.on, mask_init=1e-6, input_size=case.size),
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


def _load_result(stock: nn.Module, weights) -> tuple:
    """(missing, unexpected) keys of a non-strict load of ``weights`` (default: the stock
    backbone's own state dict) into ``stock``. A strict load is the same as a stock-to-stock
    load: no unexpected key, and missing only what the class itself drops while loading
    (SwinTransformerV2 re-creates its relative-position buffers)."""
    weights = dict(stock.state_dict() if weights is None else weights)
    result = stock.load_state_dict(weights, strict=False)
    return sorted(result.missing_keys), sorted(result.unexpected_keys)


@pytest.mark.parametrize('name', list(ZOO))
def test_a2mim_step_on_a_stock_backbone(name):
    case = ZOO[name]
    model = _build(_a2mim_cfg(case))
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
    stock = _build(case.backbone)
    state = backbone.state_dict()
    assert set(state) == set(stock.state_dict()) | MASK_KEYS
    weights = {k: v for k, v in state.items() if k not in MASK_KEYS}
    assert _load_result(stock, weights) == _load_result(_build(case.backbone), None)

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


def test_the_zoo_covers_at_least_30_backbone_classes():
    classes = {case.backbone['type'] for case in ZOO.values()}
    assert len(ZOO) >= 30 and len(classes) >= 30, sorted(classes)


@pytest.mark.parametrize('name', list(REFUSALS))
def test_points_that_cannot_work_are_refused_with_the_fix(name):
    backbone, spec, message = REFUSALS[name]
    cfg = dict(type='A2MIM', backbone=backbone, mask_token=spec,
               neck=dict(type='A2MIMLinearDecoder', in_channels=8, encoder_stride=16),
               head=dict(type='A2MIMHead', loss=dict(type='ElementwiseL1Loss')))
    with pytest.raises(ValueError, match=message):
        _build(cfg)


def _readme_section() -> str:
    text = README.read_text()
    return text.split('### Tested backbones', 1)[1].split('\n### ', 1)[0]


def test_readme_table_lists_every_zoo_case_with_its_point_and_stride():
    """The README's zoo table is the tested one: the same cases, points and strides."""
    section = _readme_section()
    table, refused = section.split('Refused', 1)
    rows = {}
    for line in table.splitlines():
        cells = [c.strip() for c in line.strip().strip('|').split('|')]
        if len(cells) == 5 and cells[0].startswith('`'):
            rows[cells[0].strip('`')] = cells
    assert set(rows) == set(ZOO), 'the README zoo table and zoo_cases.ZOO differ'
    for name, case in ZOO.items():
        _, type_cell, point, _, stride = rows[name]
        assert type_cell.split()[0] == case.backbone['type'], (name, type_cell)
        assert point == f'`{case.at}` ({case.on})', (name, point)
        assert stride == str(case.stride), (name, stride)
    for backbone, _, _ in REFUSALS.values():
        assert f'`{backbone["type"]}' in refused, backbone['type']
