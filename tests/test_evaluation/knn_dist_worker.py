"""k-NN evaluation of a tiny fixed ResNet on a labelled photo folder, in one or more processes.

Run alone (one process) or under ``torchrun`` (gloo): every process builds the same model from
a fixed seed and evaluates; rank 0 writes the gathered bank features, predictions and
accuracies to ``OUT``. ``python knn_dist_worker.py DATA_ROOT OUT``.
"""
import sys

import torch
from mmengine.dist import get_dist_info, init_dist
from mmengine.registry import init_default_scope
from mmpretrain.registry import MODELS

import a2mim_plugin  # noqa: F401  (registers the model)
from a2mim_plugin.evaluation import build_split, eval_pipeline, extract_features, knn_eval_model

TINY_MODEL = dict(
    type='A2MIM',
    data_preprocessor=dict(type='SelfSupDataPreprocessor', mean=[123.675, 116.28, 103.53],
                           std=[58.395, 57.12, 57.375], to_rgb=True),
    backbone=dict(type='A2MIMResNet', depth=18, base_channels=8, mask_layer=3, mask_init=1e-6),
    neck=dict(type='A2MIMLinearDecoder', in_channels=64, encoder_stride=32),
    head=dict(type='A2MIMHead', loss=dict(type='FocalL1Loss')))


def main(data_root: str, out: str) -> None:
    if 'RANK' in __import__('os').environ:
        init_dist('pytorch', backend='gloo')
    init_default_scope('mmpretrain')
    torch.manual_seed(0)
    model = MODELS.build(TINY_MODEL)
    model.init_weights()
    # BatchNorm statistics that are not the identity, so eval-mode features depend on them.
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.uniform_(-0.1, 0.1)
            module.running_var.uniform_(0.5, 2.)
    splits = {}
    for name, prefix in (('bank', 'train'), ('query', 'val')):
        splits[name] = build_split(dict(type='CustomDataset', data_root=data_root,
                                        data_prefix=prefix, pipeline=eval_pipeline(64)))
    splits['bank'].indices = splits['bank'].indices[:-1]  # 41: shards of 20 and 21 images
    splits['query'].indices = splits['query'].indices[:-3]  # 25: shards of 12 and 13
    result = knn_eval_model(model, splits['bank'], splits['query'], ks=(3, 20),
                            batch_size=4, dtype=torch.float32, query_chunk=7, bank_chunk=9)
    bank, labels = extract_features(model, splits['bank'].dataset, splits['bank'].indices,
                                    batch_size=4, dtype=torch.float32)
    if get_dist_info()[0] == 0:
        torch.save(dict(top1=result.top1, top5=result.top5, predictions=result.predictions,
                        num_bank=result.num_bank, num_queries=result.num_queries,
                        bank=bank, bank_labels=labels, world_size=get_dist_info()[1]), out)


if __name__ == '__main__':
    main(*sys.argv[1:3])
