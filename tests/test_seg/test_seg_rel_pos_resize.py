"""``a2mim_plugin.utils.rel_pos_resize``: BEiT's relative-position-bias resize without SciPy's
removed ``interp2d``, installed by ``import a2mim_plugin`` only where ``interp2d`` is unusable.

The strict 224-px -> 512-px loading of a ViT through the real segmentation config is
``test_seg_loading.py::test_vit_224_checkpoint_loads_into_the_512_grid``.
"""
import sys

import numpy as np
import torch
from mmpretrain.models.backbones import beit, swin_transformer

from a2mim_plugin.registration import (register_layer_decay_constructor,
                                       register_pretrained_init, repair_beit_rel_pos_resize)
from a2mim_plugin.utils import rel_pos_resize
from a2mim_plugin.utils.rel_pos_resize import (interp2d_usable, patch_beit_rel_pos_resize,
                                               resize_rel_pos_bias_table)
from seg_helpers import beit_rel_pos_table


def test_plugin_import_installs_the_resize_where_interp2d_is_gone():
    installed = not interp2d_usable()
    for module in (beit, swin_transformer):
        assert (module.resize_relative_position_bias_table is resize_rel_pos_bias_table) \
            == installed
    assert repair_beit_rel_pos_resize() == installed


def test_patch_leaves_a_working_interp2d_alone(monkeypatch):
    def original(*args):
        raise AssertionError('stands for MMPretrain\'s own function')

    for module in (beit, swin_transformer):
        monkeypatch.setattr(module, 'resize_relative_position_bias_table', original)
    monkeypatch.setattr(rel_pos_resize, 'interp2d_usable', lambda: True)
    assert patch_beit_rel_pos_resize() is False
    assert beit.resize_relative_position_bias_table is original
    assert swin_transformer.resize_relative_position_bias_table is original
    assert patch_beit_rel_pos_resize(force=True) is True
    assert beit.resize_relative_position_bias_table is resize_rel_pos_bias_table
    assert swin_transformer.resize_relative_position_bias_table is resize_rel_pos_bias_table


def test_resize_values_follow_beit_scheme():
    """The SciPy>=1.14 replacement is BEiT's scheme: equal to an independent computation."""
    table = torch.randn((2 * 14 - 1)**2 + 3, 12, generator=torch.Generator().manual_seed(0))
    # 224 px (14x14 patches) -> 512 px (32x32 patches), the real transfer.
    grid = resize_rel_pos_bias_table(27, 63, table[:-3], 12)
    assert grid.shape == (63 * 63, 12) and grid.dtype == table.dtype
    expected = beit_rel_pos_table(table, 32)[:-3]
    # Unit-variance biases; the two computations differ by < 2e-3 (the ratio found by
    # bisection vs. exactly, two spline solvers), a uniform bicubic resize by ~6.
    torch.testing.assert_close(grid, expected, rtol=0, atol=2e-3)
    # Offset (0, 0) is a node of both grids: its value is kept.
    torch.testing.assert_close(grid[(63 * 63) // 2], table[(27 * 27) // 2], rtol=0, atol=1e-5)
    assert np.isfinite(grid.numpy()).all()
    # 224 px -> 1024 px (64x64 patches), the detection transfer.
    grid = resize_rel_pos_bias_table(27, 127, table[:-3], 12)
    torch.testing.assert_close(grid, beit_rel_pos_table(table, 64)[:-3], rtol=0, atol=2e-3)


def test_registration_skips_a_codebase_that_does_not_import(monkeypatch):
    """Without MMSegmentation (or MMDetection) importing the plugin still works: the
    downstream registries are skipped and MMPretrain's gets the strict ``Pretrained``."""
    from mmpretrain.registry import WEIGHT_INITIALIZERS

    from a2mim_plugin.models.utils import StrictPretrainedInit
    from a2mim_plugin.registration import _downstream_registries

    from mmdet.registry import WEIGHT_INITIALIZERS as DET
    from mmseg.registry import WEIGHT_INITIALIZERS as SEG
    assert list(_downstream_registries('WEIGHT_INITIALIZERS')) == [DET, SEG]

    monkeypatch.setitem(sys.modules, 'mmseg.registry', None)  # `import mmseg.registry` fails
    assert list(_downstream_registries('WEIGHT_INITIALIZERS')) == [DET]
    monkeypatch.setitem(sys.modules, 'mmdet.registry', None)
    assert list(_downstream_registries('WEIGHT_INITIALIZERS')) == []
    assert list(_downstream_registries('OPTIM_WRAPPER_CONSTRUCTORS')) == []

    monkeypatch.delitem(WEIGHT_INITIALIZERS._module_dict, 'Pretrained')
    assert register_pretrained_init() is None  # no error
    assert WEIGHT_INITIALIZERS.get('Pretrained') is StrictPretrainedInit
    assert register_layer_decay_constructor() is None
