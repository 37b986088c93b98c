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
from pathlib import Path

import pytest

import a2mim_plugin  # noqa: F401  (registers the plugin)

from a2mim_model_helpers import build_seeded as _build
from a2mim_model_helpers import check_a2mim_step_on_stock_backbone
from zoo_cases import REFUSALS, ZOO

ZOO_PAGE = Path(__file__).resolve().parents[2] / 'docs' / 'backbones.md'


@pytest.mark.parametrize('name', list(ZOO))
def test_a2mim_step_on_a_stock_backbone(name):
    check_a2mim_step_on_stock_backbone(ZOO[name], input_size=ZOO[name].size)


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


def _zoo_page_section() -> str:
    text = ZOO_PAGE.read_text()
    return text.split('## Tested backbones', 1)[1].split('\n## ', 1)[0]


def test_docs_zoo_table_lists_every_zoo_case_with_its_point_and_stride():
    """The zoo table of docs/backbones.md is the tested one: the same cases, points and
    strides, and every refusal named."""
    section = _zoo_page_section()
    table, refused = section.split('Refused', 1)
    rows = {}
    for line in table.splitlines():
        cells = [c.strip() for c in line.strip().strip('|').split('|')]
        if len(cells) == 5 and cells[0].startswith('`'):
            rows[cells[0].strip('`')] = cells
    assert set(rows) == set(ZOO), 'the docs/backbones.md zoo table and zoo_cases.ZOO differ'
    for name, case in ZOO.items():
        _, type_cell, point, _, stride = rows[name]
        assert type_cell.split()[0] == case.backbone['type'], (name, type_cell)
        assert point == f'`{case.at}` ({case.on})', (name, point)
        assert stride == str(case.stride), (name, stride)
    for backbone, _, _ in REFUSALS.values():
        assert f'`{backbone["type"]}' in refused, backbone['type']
