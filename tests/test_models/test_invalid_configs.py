"""Invalid backbone configurations and inputs fail early with a message that names the fix."""
import pytest
import torch

from a2mim_model_helpers import FAMILIES, IMG, build_backbone


@pytest.mark.parametrize('family,mask_layer,grid,stride', [
    ('A2MIMConvNeXt', 3, 4, 32),  # 64 px, layer 3 is 2x2 (stride 32): a p16 mask is wrong
    ('A2MIMConvNeXt', 0, 8, 4),
    ('A2MIMResNet', 3, 16, 16),  # a p4 mask for the stride-16 layer
    ('A2MIMResNet', 0, 4, 4),
    ('A2MIMResNet', 2, 4, 8),
    ('A2MIMViT', 0, 8, 16),
    ('A2MIMPlainViT', 2, 2, 16),
])
def test_mask_grid_mismatch_names_model_patch_size(family, mask_layer, grid, stride):
    model = build_backbone(family, init=False, mask_layer=mask_layer)
    x = torch.randn(1, 3, IMG, IMG)
    feat = IMG // stride
    with pytest.raises(ValueError,
                       match=rf'{grid}x{grid} mask does not match the {feat}x{feat} feature '
                       rf'grid.*model_patch_size={stride}'):
        model(x, torch.ones(1, grid, grid, dtype=torch.long))


def test_convnext_layer3_at_224_asks_for_patch_32():
    """The case from the docs: the ViT/ResNet 14x14 mask given to ConvNeXt l3 (7x7)."""
    model = build_backbone('A2MIMConvNeXt', init=False, mask_layer=3)
    with pytest.raises(ValueError, match=r'14x14 mask.*7x7 feature grid.*model_patch_size=32'):
        model(torch.randn(1, 3, 224, 224), torch.ones(1, 14, 14, dtype=torch.long))


@pytest.mark.parametrize('family', list(FAMILIES))
def test_mask_must_be_three_dimensional(family):
    model = build_backbone(family, init=False)
    stride = FAMILIES[family]['layers'][model.mask_layer][0]
    grid = IMG // stride
    with pytest.raises(ValueError, match=r'expects a \(B, h, w\) mask'):
        model(torch.randn(1, 3, IMG, IMG), torch.ones(1, 1, grid, grid, dtype=torch.long))


@pytest.mark.parametrize('family,bad,valid_max', [
    ('A2MIMViT', 4, 3), ('A2MIMViT', -1, 3),
    ('A2MIMPlainViT', 4, 3), ('A2MIMPlainViT', -1, 3),
    ('A2MIMResNet', 4, 3), ('A2MIMResNet', -1, 3),
    ('A2MIMConvNeXt', 4, 3), ('A2MIMConvNeXt', -1, 3),
])
def test_mask_layer_out_of_range(family, bad, valid_max):
    with pytest.raises(ValueError, match=rf'mask_layer must be in \[0, {valid_max}\].*got {bad}'):
        build_backbone(family, init=False, mask_layer=bad)


@pytest.mark.parametrize('family', list(FAMILIES))
def test_unknown_mask_token_mode(family):
    with pytest.raises(ValueError, match=r"Unknown mask_token mode 'rand'; choose one of "
                       r"\('learnable', 'zero', 'randn', 'mean', 'instance_mean'\) or None"):
        build_backbone(family, init=False, mask_token='rand')
