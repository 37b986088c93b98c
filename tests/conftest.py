"""Shared fixtures: MMPretrain scope, quiet logs, a small folder of real photos."""
import logging
from pathlib import Path

import pytest
import torch
from mmengine.logging import MMLogger
from mmengine.registry import init_default_scope

import a2mim_plugin  # noqa: F401  (registers everything)
from a2mim_plugin.datasets import make_demo_imagenet

REPO_ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def mmpretrain_scope():
    """Every test runs in the ``mmpretrain`` default scope with a fixed seed and quiet logs."""
    init_default_scope('mmpretrain')
    MMLogger.get_current_instance().setLevel(logging.WARNING)
    torch.manual_seed(0)
    yield


@pytest.fixture(scope='session')
def photo_dataset(tmp_path_factory) -> Path:
    """An ImageNet-style folder (``train/<photo>/*.JPEG``) of 14 x 2 crops of real photos."""
    return make_demo_imagenet(tmp_path_factory.mktemp('photos'), crops_per_photo=2,
                              crop_size=96)
