"""Multi-order interaction strength of classifiers (Deng et al., ICLR 2022), the analysis A2MIM
uses to explain masked image modelling (Li et al., ICML 2023, Fig. 1).

Library entry point: :func:`analyze_interactions`; command line: ``tools/interaction_strength.py``.
"""
from .analyze import InteractionResult, LabelledImage, analyze_interactions, normalized_input
from .cache import InteractionCache, model_fingerprint
from .estimator import (ImageInteractions, InteractionSettings, image_interactions,
                        interaction_strength)
from .loading import check_classifier_state, check_labels, load_classifier, load_labelled_images
from .masking import BASELINES, apply_keep_masks, baseline_image, keep_masks
from .orders import ORDER_RATIOS, interaction_orders
from .outputs import OUTPUTS, ClassifierScorer, class_output
from .plotting import plot_interaction_curves
from .report import results_to_dict, write_results
from .sampling import neighbour_pairs, sample_contexts, sample_pairs

__all__ = [
    'BASELINES', 'ORDER_RATIOS', 'OUTPUTS', 'ClassifierScorer', 'ImageInteractions',
    'InteractionCache', 'InteractionResult', 'InteractionSettings', 'LabelledImage',
    'analyze_interactions', 'apply_keep_masks', 'baseline_image', 'check_classifier_state',
    'check_labels', 'class_output', 'image_interactions', 'interaction_orders',
    'interaction_strength', 'keep_masks', 'load_classifier', 'load_labelled_images',
    'model_fingerprint', 'neighbour_pairs', 'normalized_input', 'plot_interaction_curves',
    'results_to_dict', 'sample_contexts', 'sample_pairs', 'write_results'
]
