"""``mask_scale`` / ``upsample_mask``: a mask grid must cut the image into square cells of one
integer size (A2MIM, Li et al., ICML 2023, Sec. 3.2: the mask and the fill work on cells)."""
import pytest
import torch

from a2mim_plugin.models.utils import mask_scale, upsample_mask


@pytest.mark.parametrize('image_hw,mask_hw,scale', [((64, 64), (4, 4), 16),
                                                    ((64, 128), (4, 8), 16),
                                                    ((96, 32), (3, 1), 32),
                                                    ((7, 7), (7, 7), 1)])
def test_square_integer_cells(image_hw, mask_hw, scale):
    assert mask_scale(image_hw, mask_hw) == scale


@pytest.mark.parametrize('image_hw,mask_hw', [
    ((64, 128), (4, 4)),   # integer cells, but 16 x 32 px: not square
    ((128, 64), (4, 4)),   # 32 x 16 px
    ((64, 96), (8, 4)),    # 8 x 24 px
    ((65, 64), (4, 4)),    # not an integer multiple
    ((64, 64), (0, 4)),    # empty grid
])
def test_cells_that_are_not_square_integers_are_an_error(image_hw, mask_hw):
    (H, W), (h, w) = image_hw, mask_hw
    with pytest.raises(ValueError) as error:
        mask_scale(image_hw, mask_hw)
    message = str(error.value)
    assert f'{h}x{w} mask' in message and f'{H}x{W} image' in message and 'square' in message
    # the message names the config keys to fix
    assert 'input_size' in message and 'model_patch_size' in message
    assert 'SimMIMMaskGenerator' in message


def test_upsample_refuses_non_square_cells():
    with pytest.raises(ValueError, match=r'4x4 mask does not divide the 64x128 image'):
        upsample_mask(torch.ones(2, 4, 4, dtype=torch.long), (64, 128))


def test_upsample_of_a_rectangular_image_with_square_cells():
    mask = torch.tensor([[[1, 0, 0], [0, 1, 1]]])  # (1, 2, 3)
    pixels = upsample_mask(mask, (4, 6))
    assert pixels.shape == (1, 1, 4, 6) and pixels.dtype == mask.dtype
    expected = torch.tensor([[1, 1, 0, 0, 0, 0],
                             [1, 1, 0, 0, 0, 0],
                             [0, 0, 1, 1, 1, 1],
                             [0, 0, 1, 1, 1, 1]])
    assert torch.equal(pixels[0, 0], expected)
