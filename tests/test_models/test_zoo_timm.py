"""A2MIM on timm models through MMPretrain's ``TIMMBackbone`` (cases in ``zoo_cases_timm``).

The same contract as the MMPretrain zoo (``test_zoo.py``, shared check in
``a2mim_model_helpers``): the dry run finds the stride of the point; one training step gives
a finite positive loss and gradients on ``mask_token`` / ``mask_gamma``; no mask and an
all-zero mask are the stock ``TIMMBackbone`` exactly; the token changes masked cells only;
the checkpoint is the stock one plus the two mask keys. No case sets
``mask_token.input_size``: the dry run takes the size the timm model declares.
"""
import re
from pathlib import Path

import pytest
import timm
import torch

import a2mim_plugin  # noqa: F401  (registers the plugin)
from a2mim_plugin.models.mask_injection import default_input_size

from a2mim_model_helpers import build_seeded, check_a2mim_step_on_stock_backbone
from zoo_cases_timm import DECLARED_SIZE, TIMM_ZOO, timm_backbone

DOC = Path(__file__).resolve().parents[2] / 'docs' / 'timm.md'


@pytest.mark.parametrize('name', list(TIMM_ZOO))
def test_a2mim_step_on_a_timm_model(name):
    case = TIMM_ZOO[name]
    model = check_a2mim_step_on_stock_backbone(case, input_size=None)
    assert model.backbone.timm_model.pretrained_cfg['architecture'] == name
    assert model.mask_injection.dry_run.input_size == DECLARED_SIZE[name]


def test_the_timm_zoo_covers_the_families_of_the_issue():
    """ResNet, ConvNeXt, EfficientNet, RegNet, ViT and Swin, by timm's model modules."""
    modules = {timm.models.model_entrypoint(name).__module__.split('.')[-1]
               for name in TIMM_ZOO}
    assert modules >= {'resnet', 'convnext', 'efficientnet', 'regnet', 'vision_transformer',
                       'swin_transformer'}, modules


@pytest.mark.parametrize('kwargs, expected', [
    (dict(img_size=64), 64),        # the patch embedding's built size
    (dict(img_size=(96, 96)), 96),
    (dict(), 224),                  # vit_tiny_patch16_224's pretrained_cfg
])
def test_declared_input_size_of_a_timm_vit(kwargs, expected):
    backbone = build_seeded(timm_backbone('vit_tiny_patch16_224', depth=1, embed_dim=32,
                                          num_heads=1, feature_cls='getter', out_indices=(0, ),
                                          **kwargs))
    assert default_input_size(backbone) == expected


def test_declared_input_size_from_pretrained_cfg_of_a_cnn():
    backbone = build_seeded(timm_backbone('resnet10t'))
    assert backbone.timm_model.pretrained_cfg['input_size'] == (3, 176, 176)
    assert default_input_size(backbone) == 176
    plain = build_seeded(dict(type='TIMMBackbone', model_name='resnet10t'))  # not wrapped
    assert default_input_size(plain) == 176


def test_a_timm_vit_at_another_size_needs_no_input_size():
    """Built for 96 px, the ViT refuses a 224 px dry run; the declared size avoids it."""
    cfg = timm_backbone('vit_tiny_patch16_224', out_indices=(0, ), depth=1, embed_dim=32,
                        num_heads=1, feature_cls='getter', img_size=96)
    a2mim = dict(type='A2MIM', backbone=cfg,
                 mask_token=dict(at='timm_model.model.blocks.0', on='input'),
                 neck=dict(type='A2MIMLinearDecoder', in_channels=32, encoder_stride=16),
                 head=dict(type='A2MIMHead', loss=dict(type='ElementwiseL1Loss')))
    model = build_seeded(a2mim)
    found = model.mask_injection.dry_run
    assert (found.input_size, found.stride, found.output_shape) == (96, 16, (32, 6, 6))
    with pytest.raises(ValueError, match=r'224x224 input.*model.mask_token.input_size'):
        build_seeded(dict(a2mim, mask_token=dict(at='timm_model.model.blocks.0',
                                                 input_size=224)))
    x = torch.randn(1, 3, 96, 96)
    assert model.backbone(x)[-1].shape == (1, 32, 6, 6)


def test_docs_table_lists_every_timm_case_with_its_point_and_stride():
    text = DOC.read_text()
    section = text.split('## Tested timm models', 1)[1].split('\n## ', 1)[0]
    rows = {}
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip('|').split('|')]
        if len(cells) == 4 and cells[0].startswith('`'):
            rows[cells[0].strip('`')] = cells
    assert set(rows) == set(TIMM_ZOO), 'docs/timm.md and zoo_cases_timm.TIMM_ZOO differ'
    for name, case in TIMM_ZOO.items():
        _, _, point, stride = rows[name]
        assert point == f'`{case.at}` ({case.on})', (name, point)
        assert re.fullmatch(rf'{case.stride}( .*)?', stride), (name, stride)
