"""Session fixtures for the MMDetection transfer tests: a tiny COCO set and tiny A2MIM
pre-training checkpoints (one per backbone family, made on first use)."""
from pathlib import Path
from typing import Callable, Dict

import pytest
import torch

from det_helpers import export_backbone, make_tiny_coco, pretrain_a2mim


@pytest.fixture(autouse=True)
def _one_thread():
    """The CPU runs are tiny; more threads only contend with other jobs (restored after)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope='session')
def tiny_coco(tmp_path_factory) -> Path:
    """4 train / 2 val photos (160 x 120) with boxes and polygon masks, COCO json."""
    return make_tiny_coco(tmp_path_factory.mktemp('tiny_coco'))


@pytest.fixture(scope='session')
def a2mim_checkpoint(tmp_path_factory, photo_dataset) -> Callable[[str], Dict[str, Path]]:
    """``family -> {'full': runner checkpoint, 'exported': backbone-only export}``."""
    cache: Dict[str, Dict[str, Path]] = {}

    def get(family: str) -> Dict[str, Path]:
        if family not in cache:
            work_dir = tmp_path_factory.mktemp(f'a2mim_{family}')
            full = pretrain_a2mim(family, photo_dataset, work_dir)
            exported = export_backbone(full, work_dir / 'backbone.pth')
            cache[family] = dict(full=full, exported=exported)
        return cache[family]

    return get
