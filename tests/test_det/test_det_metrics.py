"""The det configs' COCO evaluator gives the known values for predictions whose quality is known.

The training test (``test_det_transfer.py``) only checks that a 2-iteration model yields
metrics in [0, 1]. Here the configs' own ``val_evaluator`` (MMDetection's ``CocoMetric``,
bbox + segm) scores predictions built from the tiny COCO set's ground truth:

* the ground truth itself: mAP 1;
* the ground truth with the two classes swapped: mAP 0;
* only the 'round' objects: mAP 0.5 (AP 1 for 'round', 0 for 'square', averaged per class);
* every box narrowed to 62 % of its width (IoU 0.62 with its object): AP 1 at the IoU
  thresholds 0.50, 0.55, 0.60 and 0 at the 7 thresholds 0.65 ... 0.95, so mAP 0.3,
  mAP_50 1 and mAP_75 0.
"""
import json
from typing import Callable, Dict, List

import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.registry import init_default_scope
from mmdet.registry import METRICS

from det_helpers import CLASSES, DET_CONFIGS


def _ground_truth(coco_root) -> Dict[int, List[dict]]:
    """Per image id: the annotations with their masks (pycocotools' polygon rasteriser)."""
    from pycocotools.coco import COCO

    coco = COCO(str(coco_root / 'val.json'))
    return {img_id: [dict(ann, mask=coco.annToMask(ann)) for ann in
                     coco.loadAnns(coco.getAnnIds(imgIds=[img_id]))]
            for img_id in coco.getImgIds()}


def _evaluate(coco_root, predict: Callable[[dict], dict]) -> Dict[str, float]:
    """Run the R50-FPN config's val_evaluator on ``predict(annotation) -> instance`` per object."""
    cfg = Config.fromfile(str(DET_CONFIGS / 'mask-rcnn_r50_fpn_a2mim_ms-1x_coco.py'))
    assert cfg.val_evaluator.type == 'CocoMetric'
    init_default_scope('mmdet')
    metric = METRICS.build(dict(cfg.val_evaluator, ann_file=str(coco_root / 'val.json')))
    metric.dataset_meta = dict(classes=CLASSES)
    images = {i['id']: i for i in json.loads((coco_root / 'val.json').read_text())['images']}
    samples = []
    for img_id, anns in _ground_truth(coco_root).items():
        preds = [p for p in (predict(a) for a in anns) if p is not None]
        height, width = images[img_id]['height'], images[img_id]['width']
        samples.append(dict(
            img_id=img_id, ori_shape=(height, width),
            pred_instances=dict(
                bboxes=torch.tensor([p['bbox'] for p in preds], dtype=torch.float32),
                scores=torch.ones(len(preds)),
                labels=torch.tensor([p['label'] for p in preds], dtype=torch.long),
                masks=torch.from_numpy(np.stack([p['mask'] for p in preds]).astype(bool)))))
    metric.process({}, samples)
    return metric.evaluate(len(samples))


def _as_predicted(ann: dict, label: int = None, width_scale: float = 1.) -> dict:
    x, y, w, h = ann['bbox']
    return dict(bbox=[x, y, x + w * width_scale, y + h],
                label=ann['category_id'] - 1 if label is None else label, mask=ann['mask'])


def test_ground_truth_scores_one(tiny_coco):
    metrics = _evaluate(tiny_coco, _as_predicted)
    for key in ('bbox_mAP', 'bbox_mAP_50', 'bbox_mAP_75', 'segm_mAP', 'segm_mAP_50'):
        assert metrics[f'coco/{key}'] == 1.0, (key, metrics)


def test_swapped_classes_score_zero(tiny_coco):
    metrics = _evaluate(tiny_coco, lambda a: _as_predicted(a, label=2 - a['category_id']))
    assert metrics['coco/bbox_mAP'] == metrics['coco/segm_mAP'] == 0.0, metrics


def test_one_class_found_scores_one_half(tiny_coco):
    """Both classes have objects in the val images; only 'round' (category 1) is predicted."""
    assert {a['category_id'] for anns in _ground_truth(tiny_coco).values() for a in anns} \
        == {1, 2}
    metrics = _evaluate(tiny_coco,
                        lambda a: _as_predicted(a) if a['category_id'] == 1 else None)
    assert metrics['coco/bbox_mAP'] == metrics['coco/segm_mAP'] == 0.5, metrics


def test_iou_062_boxes_score_three_of_ten_thresholds(tiny_coco):
    metrics = _evaluate(tiny_coco, lambda a: _as_predicted(a, width_scale=0.62))
    assert metrics['coco/bbox_mAP'] == pytest.approx(0.3, abs=1e-3), metrics
    assert metrics['coco/bbox_mAP_50'] == 1.0 and metrics['coco/bbox_mAP_75'] == 0.0, metrics
    assert metrics['coco/segm_mAP'] == 1.0, 'the masks are the ground truth'
