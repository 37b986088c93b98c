"""Labelled bank and query sets for k-NN evaluation (MMPretrain dataset configs)."""
import copy
from dataclasses import dataclass
from typing import List, Optional

import numpy as np
from mmpretrain.registry import DATASETS

# Resize the short side to crop / 0.875, then a centre crop: MMPretrain's test pipelines.
CROP_RATIO = 0.875


def eval_pipeline(crop_size: int = 224) -> List[dict]:
    """The deterministic test pipeline at ``crop_size`` (short side crop / 0.875, centre
    crop, bicubic), as MMPretrain's ImageNet test pipelines."""
    return [
        dict(type='LoadImageFromFile'),
        dict(type='ResizeEdge', scale=int(round(crop_size / CROP_RATIO)), edge='short',
             backend='pillow', interpolation='bicubic'),
        dict(type='CenterCrop', crop_size=crop_size),
        dict(type='PackInputs'),
    ]


@dataclass
class LabelledSplit:
    """A built dataset, the indices used from it, their labels, and the class count."""
    dataset: object
    indices: List[int]
    labels: np.ndarray
    num_classes: int


def per_class_subset(labels: np.ndarray, per_class: Optional[int], seed: int) -> List[int]:
    """A fixed, seeded choice of at most ``per_class`` indices of each class (all when None),
    in increasing index order; the same for any number of processes."""
    if per_class is None:
        return list(range(len(labels)))
    if per_class < 1:
        raise ValueError(f'k-NN per_class must be >= 1 or None, got {per_class!r}.')
    rng = np.random.default_rng(seed)
    chosen = []
    for cls in np.unique(labels):
        members = np.flatnonzero(labels == cls)
        if len(members) > per_class:
            members = np.sort(rng.choice(members, size=per_class, replace=False))
        chosen.append(members)
    return sorted(int(i) for i in np.concatenate(chosen)) if chosen else []


def build_split(dataset_cfg: dict, per_class: Optional[int] = None, seed: int = 0
                ) -> LabelledSplit:
    """Build a labelled dataset from its config and choose its per-class subset.

    Raises:
        ValueError: the dataset has no labels or no images.
    """
    dataset = DATASETS.build(copy.deepcopy(dataset_cfg))
    if len(dataset) == 0:
        raise ValueError('the dataset is empty')
    labels = np.asarray(dataset.get_gt_labels())
    if labels.dtype == object or labels.ndim != 1:
        raise ValueError('k-NN needs one class label per image (with_label=True)')
    classes = getattr(dataset, 'CLASSES', None) or dataset.metainfo.get('classes')
    num_classes = len(classes) if classes else int(labels.max()) + 1
    indices = per_class_subset(labels, per_class, seed)
    return LabelledSplit(dataset, indices, labels[indices].astype(np.int64), num_classes)
