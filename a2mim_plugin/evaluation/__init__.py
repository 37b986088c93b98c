"""Online and offline evaluation of pre-trained backbones: weighted k-NN (Wu et al., 2018)."""
from .data import LabelledSplit, build_split, eval_pipeline, per_class_subset
from .evaluate import knn_eval_model
from .features import backbone_features, extract_features, gather_rows, pool_output
from .knn import KNNResult, accuracies, knn_classify, knn_evaluate, nearest_neighbours

__all__ = ['KNNResult', 'LabelledSplit', 'accuracies', 'backbone_features', 'build_split',
           'eval_pipeline', 'extract_features', 'gather_rows', 'knn_classify', 'knn_eval_model',
           'knn_evaluate', 'nearest_neighbours', 'per_class_subset', 'pool_output']
