"""Fixtures of the k-NN evaluation tests: a labelled train/val folder of photo crops."""
from pathlib import Path

import pytest

from a2mim_plugin.datasets import make_demo_classification


@pytest.fixture(scope='session')
def labelled_photos(tmp_path_factory) -> Path:
    """``train/<photo>/`` (3 crops per photo) and ``val/<photo>/`` (2 crops), 14 photos, 64 px."""
    return make_demo_classification(tmp_path_factory.mktemp('labelled_photos'),
                                    train_per_photo=3, val_per_photo=2, crop_size=64)
