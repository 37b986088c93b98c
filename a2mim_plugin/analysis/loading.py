"""Building the classifiers and the labelled images an interaction analysis runs on, with the
checks that keep it meaningful: a trained classifier head, labels of its classes."""
import os
from collections import Counter
from typing import Dict, List, Optional, Sequence, Tuple, Union

import torch
from mmengine.config import Config
from mmengine.logging import print_log
from mmengine.registry import init_default_scope
from mmengine.runner.checkpoint import _load_checkpoint
from mmengine.utils import import_modules_from_strings

from .analyze import LabelledImage

PathLike = Union[str, os.PathLike]


def _state_dict(checkpoint: PathLike) -> Tuple[Dict[str, torch.Tensor], dict]:
    ckpt = _load_checkpoint(str(checkpoint), map_location='cpu')
    if not isinstance(ckpt, dict):
        raise RuntimeError(f'{checkpoint} holds a {type(ckpt).__name__}, not a state dict.')
    state = ckpt.get('state_dict', ckpt)
    state = {(k[len('module.'):] if k.startswith('module.') else k): v
             for k, v in state.items() if isinstance(v, torch.Tensor)}
    return state, ckpt.get('meta', {}) or {}


def _top_prefixes(keys: Sequence[str]) -> str:
    counts = Counter(k.split('.', 1)[0] + '.' for k in keys)
    return ', '.join(f'{p} ({n})' for p, n in counts.most_common(6)) or 'none'


def check_classifier_state(model: torch.nn.Module, state: Dict[str, torch.Tensor],
                           source: str) -> None:
    """Refuse a checkpoint that does not fill the classifier completely.

    The check compares what the checkpoint holds with the model's own keys: every tensor of
    ``model.head`` must be present as ``head.<name>`` with the model's shape (a pre-training
    or backbone-only checkpoint has none, and a classifier for another label set has another
    shape), and every other parameter must be present too.

    Args:
        model: the built classifier (an ``ImageClassifier``).
        state: the checkpoint's state dict.
        source: the checkpoint's path, for messages.

    Raises:
        RuntimeError: naming the keys that did not load and what to do.
    """
    head = getattr(model, 'head', None)
    head_keys = [f'head.{k}' for k in head.state_dict()] if head is not None else []
    if not head_keys:
        raise RuntimeError(f'The model built for {source} has no classifier head with weights '
                           '(model.head); the interaction analysis needs an ImageClassifier.')
    missing_head = [k for k in head_keys if k not in state]
    if missing_head:
        raise RuntimeError(
            f'{source} holds no trained classifier head: {", ".join(missing_head)} missing '
            f'(the checkpoint\'s keys start with {_top_prefixes(list(state))}). It looks like a '
            'pre-training or backbone-only checkpoint; the interaction analysis needs a '
            'fine-tuned classifier. Fine-tune it first (e.g. the configs under '
            'configs/a2mim/benchmarks/ or configs/demo/) and pass that checkpoint.')
    model_state = model.state_dict()
    wrong = [f'{k}: checkpoint {tuple(state[k].shape)}, model {tuple(model_state[k].shape)}'
             for k in head_keys if tuple(state[k].shape) != tuple(model_state[k].shape)]
    if wrong:
        raise RuntimeError(
            f'The classifier head in {source} does not fit the model: {"; ".join(wrong)}. Set '
            'model.head.num_classes (and in_channels) of the config to the checkpoint\'s.')
    missing = [k for k in model_state if k not in state]
    if missing:
        shown = ', '.join(missing[:8]) + (f', ... (+{len(missing) - 8})' if len(missing) > 8
                                          else '')
        raise RuntimeError(f'{source} does not fill the model: {len(missing)} keys missing '
                           f'({shown}); the classifier would be partly random. Check that the '
                           'config matches the checkpoint.')


def load_classifier(config: PathLike, checkpoint: PathLike,
                    device: Union[str, torch.device] = 'cpu'
                    ) -> Tuple[torch.nn.Module, Optional[List[str]]]:
    """Build ``config``'s model and load a fine-tuned classifier checkpoint into it.

    The config's ``custom_imports`` are imported, its default scope (``mmpretrain`` when unset)
    is set and its top-level ``data_preprocessor`` (mean / std) goes into the model as the
    runner would put it. The backbone's own ``init_cfg`` (e.g. a pre-training checkpoint) is not
    run: every weight comes from ``checkpoint``, checked by :func:`check_classifier_state`.

    Args:
        config: an MMPretrain classification config.
        checkpoint: the fine-tuned checkpoint.
        device: where the model goes.

    Returns:
        The model in eval mode and the class names of its training set when the checkpoint's
        ``meta.dataset_meta`` records them (else None).
    """
    cfg = Config.fromfile(str(config))
    if cfg.get('custom_imports'):
        import_modules_from_strings(**cfg.custom_imports)
    init_default_scope(cfg.get('default_scope', 'mmpretrain'))
    from mmpretrain.registry import MODELS
    model_cfg = cfg.model.copy()
    if cfg.get('data_preprocessor') is not None:  # as mmengine's Runner merges it
        model_cfg.setdefault('data_preprocessor', cfg.data_preprocessor)
    model = MODELS.build(model_cfg)
    state, meta = _state_dict(checkpoint)
    check_classifier_state(model, state, str(checkpoint))
    unexpected = model.load_state_dict(state, strict=False).unexpected_keys
    if unexpected:
        print_log(f'{checkpoint}: {len(unexpected)} checkpoint keys are not used by the model '
                  f'({", ".join(unexpected[:5])}...)', logger='current')
    classes = (meta.get('dataset_meta') or {}).get('classes')
    return model.to(device).eval(), (list(classes) if classes is not None else None)


def load_labelled_images(data_root: PathLike, data_prefix: str = '', ann_file: str = '',
                         resize: int = 256, crop_size: int = 224,
                         num_images: Optional[int] = None
                         ) -> Tuple[List[LabelledImage], Optional[List[str]]]:
    """Images of an ImageNet-style folder or annotation file, resized and centre-cropped.

    Images are taken round-robin over the classes (the first image of every class, then the
    second, ...), so a small ``num_images`` covers many classes and a larger one extends a
    smaller one (the cache reuses the common images).

    Args:
        data_root: dataset root.
        data_prefix: image folder under the root (e.g. 'val').
        ann_file: annotation file (``path label`` per line); empty = class sub-folders.
        resize: shorter side after resizing (bicubic).
        crop_size: side of the centre crop.
        num_images: how many images (None = all).

    Returns:
        The images and the dataset's class names (None if it has none).
    """
    from mmpretrain.datasets import CustomDataset

    pipeline = [
        dict(type='LoadImageFromFile'),
        dict(type='ResizeEdge', scale=resize, edge='short', backend='pillow',
             interpolation='bicubic'),
        dict(type='CenterCrop', crop_size=crop_size),
        dict(type='PackInputs'),
    ]
    init_default_scope('mmpretrain')
    dataset = CustomDataset(data_root=str(data_root), data_prefix=data_prefix,
                            ann_file=ann_file, with_label=True, pipeline=pipeline)
    by_class: Dict[int, List[int]] = {}
    for index, label in enumerate(dataset.get_gt_labels().tolist()):
        by_class.setdefault(int(label), []).append(index)
    order = [indices[k] for k in range(max(map(len, by_class.values()), default=0))
             for _, indices in sorted(by_class.items()) if k < len(indices)]
    if num_images is not None:
        if num_images < 1:
            raise ValueError(f'num_images must be >= 1, got {num_images}.')
        order = order[:num_images]
    images = []
    for index in order:
        item = dataset[index]
        images.append(LabelledImage(dataset.get_data_info(index)['img_path'], item['inputs'],
                                    int(item['data_samples'].gt_label.item())))
    classes = list(dataset.CLASSES) if dataset.CLASSES else None
    return images, classes


def check_labels(images: Sequence[LabelledImage], num_classes: int,
                 model_classes: Optional[Sequence[str]] = None,
                 data_classes: Optional[Sequence[str]] = None, model_name: str = 'model') -> None:
    """Refuse images whose label the classifier cannot score.

    Args:
        images: the labelled images.
        num_classes: classes of the classifier's head.
        model_classes: class names the classifier was trained on, if known.
        data_classes: class names of the image set, if known.
        model_name: for messages.

    Raises:
        ValueError: a label outside ``[0, num_classes)``, or two known class lists that differ
            (labels would then name other classes than the head's).
    """
    outside = [f'{image.name} (label {image.label})' for image in images
               if not 0 <= image.label < num_classes]
    if outside:
        raise ValueError(f'{len(outside)} images carry labels outside the {num_classes} classes '
                         f'of {model_name}\'s head: {", ".join(outside[:5])}. Use an image set '
                         'labelled with the classifier\'s classes (--data-root / --ann-file).')
    if model_classes is not None and data_classes is not None \
            and list(model_classes) != list(data_classes):
        raise ValueError(f'The image set\'s classes ({list(data_classes)[:5]}...) are not the '
                         f'classes {model_name} was fine-tuned on ({list(model_classes)[:5]}...);'
                         ' the ground-truth labels would name other classes.')
