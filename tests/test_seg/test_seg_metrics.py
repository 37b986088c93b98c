"""The seg configs' evaluator gives the known mIoU for predictions whose quality is known.

The runner test (``test_seg_runner.py``) only checks that a 2-iteration model yields an mIoU
in [0, 100]. Here the configs' own ``val_evaluator`` (MMSegmentation's ``IoUMetric``) scores
label maps built from the tiny ADE20K-format validation set: the ground truth itself gives
mIoU 100, and a constant prediction gives the chance value computed below with numpy.
"""
from typing import Dict, List

import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.registry import init_default_scope
from mmseg.registry import METRICS

from seg_helpers import CONFIGS, NUM_LABELS, SEG_CONFIGS

IGNORE = 255


def _val_labels(seg_dataset) -> List[np.ndarray]:
    """The validation label maps as training sees them (``reduce_zero_label``: 0..3, 255)."""
    from mmseg.datasets import ADE20KDataset

    init_default_scope('mmseg')
    dataset = ADE20KDataset(
        data_root=str(seg_dataset),
        data_prefix=dict(img_path='images/validation', seg_map_path='annotations/validation'),
        pipeline=[dict(type='LoadImageFromFile'),
                  dict(type='LoadAnnotations', reduce_zero_label=True)])
    return [dataset[i]['gt_seg_map'] for i in range(len(dataset))]


def _evaluate(labels: List[np.ndarray], preds: List[np.ndarray]) -> Dict[str, float]:
    cfg = Config.fromfile(str(SEG_CONFIGS / CONFIGS['resnet']))
    assert cfg.val_evaluator.type == 'IoUMetric'
    init_default_scope('mmseg')
    metric = METRICS.build(cfg.val_evaluator)
    metric.dataset_meta = dict(classes=tuple(f'class{k}' for k in range(NUM_LABELS)))
    samples = [dict(pred_sem_seg=dict(data=torch.from_numpy(pred.astype(np.int64))[None]),
                    gt_sem_seg=dict(data=torch.from_numpy(label.astype(np.int64))[None]))
               for label, pred in zip(labels, preds)]
    metric.process({}, samples)
    return metric.evaluate(len(samples))


def _reference_miou(labels: List[np.ndarray], preds: List[np.ndarray]) -> float:
    """Mean over classes of |pred = k and gt = k| / |pred = k or gt = k| on non-ignored
    pixels, summed over the images; classes that appear in neither are left out."""
    gt = np.concatenate([label.ravel() for label in labels])
    pred = np.concatenate([p.ravel() for p in preds])
    valid = gt != IGNORE
    gt, pred = gt[valid], pred[valid]
    ious = []
    for k in range(NUM_LABELS):
        union = np.sum((gt == k) | (pred == k))
        if union:
            ious.append(np.sum((gt == k) & (pred == k)) / union)
    return 100. * float(np.mean(ious))


def test_ground_truth_scores_100(seg_dataset):
    labels = _val_labels(seg_dataset)
    # the prediction at ignored pixels does not count: put a real class there
    preds = [np.where(label == IGNORE, 0, label) for label in labels]
    metrics = _evaluate(labels, preds)
    assert metrics['mIoU'] == 100.0 and metrics['aAcc'] == 100.0, metrics


def test_constant_prediction_scores_chance(seg_dataset):
    labels = _val_labels(seg_dataset)
    valid = np.concatenate([label[label != IGNORE] for label in labels])
    assert set(np.unique(valid).tolist()) == set(range(NUM_LABELS))  # every class present
    counts = np.bincount(valid, minlength=NUM_LABELS)
    majority = int(counts.argmax())
    preds = [np.full_like(label, majority) for label in labels]
    metrics = _evaluate(labels, preds)
    # Only the majority class overlaps: IoU = its share of the valid pixels, others 0.
    share = counts[majority] / counts.sum()
    expected = 100. * share / NUM_LABELS
    assert _reference_miou(labels, preds) == pytest.approx(expected)
    assert metrics['mIoU'] == pytest.approx(expected, abs=0.01), metrics
    assert metrics['aAcc'] == pytest.approx(100. * share, abs=0.01), metrics
    assert 5. < metrics['mIoU'] < 25.  # a chance value, far from a perfect score


def test_half_right_prediction_matches_the_reference(seg_dataset):
    """Ground truth on the left half of each image, a shifted class on the right half."""
    labels = _val_labels(seg_dataset)
    preds = []
    for label in labels:
        pred = np.where(label == IGNORE, 0, label).copy()
        half = pred.shape[1] // 2
        pred[:, half:] = (pred[:, half:] + 1) % NUM_LABELS
        preds.append(pred)
    metrics = _evaluate(labels, preds)
    expected = _reference_miou(labels, preds)
    assert 20. < expected < 80.
    assert metrics['mIoU'] == pytest.approx(expected, abs=0.01), metrics
