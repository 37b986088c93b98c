"""Every refusal says what is wrong and what to do instead.

Each case builds (or runs) a tiny model the way a user would get it wrong and checks the
message for the problem and for the fix: a key to set, or the part to use instead. The stock
backbone injection points that cannot work are in ``zoo_cases.REFUSALS`` (test_zoo.py); this
file covers the channel (RGB-only) checks, the non-square mask generator, the backbone with no
usable output (Conformer) and the remaining injection messages.
"""
import copy
import re
from typing import Callable, Dict, Tuple

import pytest
import torch
from mmpretrain.registry import MODELS, TRANSFORMS
from mmpretrain.structures import DataSample

from a2mim_plugin.models.mask_injection import MaskTokenInjection
from a2mim_plugin.models.mask_injection.token import check_token_args
from a2mim_plugin.models.utils.config_checks import check_loaded_channels
from a2mim_plugin.models.utils.latent_map import LatentLayout

RGB = dict(type='SelfSupDataPreprocessor', mean=[123.675, 116.28, 103.53],
           std=[58.395, 57.12, 57.375], to_rgb=True)


def _a2mim(channels: int = 3, preprocessor: dict = RGB, backbone_channels=None,
           head_channels=None, **backbone) -> dict:
    """A tiny A2MIM ResNet-18 config for ``channels``-channel images."""
    return dict(
        type='A2MIM', data_preprocessor=preprocessor,
        backbone=dict(type='A2MIMResNet', depth=18, mask_layer=3,
                      in_channels=channels if backbone_channels is None else backbone_channels,
                      **backbone),
        neck=dict(type='A2MIMLinearDecoder', in_channels=512, encoder_stride=32,
                  out_channels=channels),
        head=dict(type='A2MIMHead', encoder_in_channels=channels if head_channels is None
                  else head_channels))


def _build(cfg: dict) -> Callable[[], object]:
    return lambda: MODELS.build(copy.deepcopy(cfg))


def _gray_batch_into_rgb_model():
    model = MODELS.build(_a2mim())
    samples = [DataSample().set_mask(torch.zeros(4, 4, dtype=torch.long)) for _ in range(2)]
    model.loss(torch.zeros(2, 1, 64, 64), samples)


def _head_gets_other_channels():
    head = MODELS.build(dict(type='A2MIMHead'))
    head.loss(torch.zeros(2, 3, 64, 64), torch.zeros(2, 1, 64, 64),
              torch.zeros(2, 4, 4, dtype=torch.long))


def _four_channel_batch_into_five_channel_preprocessor():
    preprocessor = MODELS.build(dict(type='MultiChannelDataPreprocessor', mean=[0.] * 5,
                                     std=[1.] * 5))
    preprocessor(dict(inputs=torch.zeros(2, 4, 8, 8, dtype=torch.uint8), data_samples=None))


def _two_d_mask():
    backbone = MODELS.build(dict(type='ResNet', depth=18))
    injection = MaskTokenInjection(backbone, at='layer3', input_size=64)
    injection.run(backbone, torch.zeros(2, 3, 64, 64), torch.zeros(2, 16))


def _token_of_odd_shape():
    backbone = MODELS.build(dict(type='ResNet', depth=18))
    MaskTokenInjection.from_state(backbone, dict(at='layer3'), torch.zeros(2, 3))


def _sequence_off_the_grid():
    LatentLayout('NLC', 0, 16).to_map(torch.zeros(2, 20, 64), (64, 64))


CONFORMER = dict(type='Conformer', arch=dict(embed_dims=64, depths=3, num_heads=2,
                                             channel_ratio=1), out_indices=(2, ))

# name: (what raises, regex of the problem, regex of the fix)
CASES: Dict[str, Tuple[Callable[[], object], str, str]] = {
    # Images that are not RGB: the parts that must agree on the channel count.
    'to_rgb-on-gray': (
        _build(_a2mim(1, dict(RGB, mean=[127.], std=[60.]))),
        r'channel swap needs 3-channel images', r'set model\.data_preprocessor\.to_rgb=False'),
    'rgb-mean-on-gray': (
        _build(_a2mim(1, dict(RGB, to_rgb=False))),
        r'mean has 3 values but model\.neck\.out_channels=1',
        r'set model\.data_preprocessor\.mean and std to 1 values'),
    'rgb-stem-on-4-channels': (
        _build(_a2mim(4, dict(type='MultiChannelDataPreprocessor', mean=[0.] * 4, std=[1.] * 4),
                      backbone_channels=3)),
        r'A2MIMResNet takes 3-channel images but model\.neck\.out_channels=4',
        r'set model\.backbone\.in_channels=4'),
    'head-averages-over-rgb': (
        _build(_a2mim(1, dict(type='SelfSupDataPreprocessor', mean=[0.], std=[1.]),
                      head_channels=3)),
        r'encoder_in_channels=3 but model\.neck predicts 1 channels',
        r'set model\.head\.encoder_in_channels=1'),
    'gray-batch-into-rgb-model': (
        _gray_batch_into_rgb_model, r'images have 1 channels but the model is built for 3',
        r'set model\.backbone\.in_channels, model\.neck\.out_channels, '
        r'model\.head\.encoder_in_channels and model\.data_preprocessor\.mean/std to 1'),
    'head-prediction-channels': (
        _head_gets_other_channels, r'prediction \(2, 3, 64, 64\) and target \(2, 1, 64, 64\)',
        r'set model\.neck\.out_channels=1'),
    'multichannel-preprocessor-swap': (
        _build(dict(type='MultiChannelDataPreprocessor', mean=[0.] * 5, std=[1.] * 5,
                    to_rgb=True)),
        r'channel swap needs 3-channel images', r'set model\.data_preprocessor\.to_rgb=False'),
    'multichannel-preprocessor-lengths': (
        _build(dict(type='MultiChannelDataPreprocessor', mean=[0.] * 5, std=[1.] * 4)),
        r'mean has 5 values but std has 4', r'set both to one value per image channel'),
    'gray-loader-for-rgb-model': (
        lambda: check_loaded_channels([dict(type='LoadImageFromFile', color_type='grayscale')],
                                      3),
        r"loads 1-channel images but the model is built for 3: .*color_type='grayscale'",
        r"to 1 channels, or color_type='unchanged'"),
    'color-loader-for-gray-model': (
        lambda: check_loaded_channels([dict(type='LoadImageFromFile')], 1),
        r"loads 3-channel images but the model is built for 1",
        r"set model\.backbone\.in_channels, .* to 3 channels, or color_type='grayscale'"),
    'multichannel-preprocessor-batch': (
        _four_channel_batch_into_five_channel_preprocessor,
        r'images have \[4\] channels but model\.data_preprocessor\.mean/std have 5 values',
        r'set them to one value per loaded channel'),
    # Non-square crops.
    'rect-mask-off-the-blocks': (
        lambda: TRANSFORMS.build(dict(type='SimMIMRectMaskGenerator', input_size=(64, 80),
                                      mask_patch_size=32, model_patch_size=16)),
        r'input_size=\(64, 80\) must be a multiple of mask_patch_size=32',
        r'set input_size to the crop rounded to a multiple of 32'),
    # A backbone with no output the decoder can read, whatever the injection point.
    'conformer-two-pooled-streams': (
        _build(dict(type='A2MIM', backbone=CONFORMER, mask_token=dict(at='conv_1', input_size=64),
                    neck=dict(type='A2MIMLinearDecoder', in_channels=64, encoder_stride=16),
                    head=dict(type='A2MIMHead'))),
        r'Conformer returns a list as its last output, not one feature tensor',
        r'Conformer returns two pooled streams.*use another backbone, e\.g\. ResNet'),
    # The remaining injection messages.
    'mask-token-side': (
        _build(dict(_a2mim(), backbone=dict(type='ResNet', depth=18),
                    mask_token=dict(at='layer3', on='middle'))),
        r"mask_token\.on must be one of \('input', 'output'\), got 'middle'",
        r"set model\.mask_token\.on='input' or 'output'"),
    'negative-mask-init': (
        lambda: check_token_args('learnable', -1., 'trunc_normal'),
        r'mask_init must be >= 0', r'set it to 0 or a small positive value'),
    'two-d-mask': (_two_d_mask, r'expects a \(B, h, w\) mask, got shape \(2, 16\)',
                   r'make one \(h, w\) mask per image with .*SimMIMMaskGenerator'),
    'stored-token-of-odd-shape': (
        _token_of_odd_shape, r'mask_token of shape \(2, 3\) is not',
        r'convert official checkpoints with tools/convert_official\.py'),
    'token-sequence-off-the-grid': (
        _sequence_off_the_grid, r'does not hold the 4x4 patch grid of a 64x64 input',
        r'set model\.backbone\.img_size to the crop'),
}


@pytest.mark.parametrize('name', list(CASES))
def test_refusal_names_the_problem_and_the_fix(name):
    raises, problem, fix = CASES[name]
    with pytest.raises(ValueError) as info:
        raises()
    message = str(info.value)
    assert re.search(problem, message), message
    assert re.search(fix, message), message


def test_rgb_config_builds_without_a_channel_refusal():
    """The RGB default passes every channel check (the checks refuse only real mismatches)."""
    model = MODELS.build(_a2mim())
    assert model.image_channels == 3
    assert model.backbone.conv1.in_channels == 3
