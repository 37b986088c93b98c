"""Interaction strength of several classifiers over a set of labelled images (the measurement
behind Fig. 1 of Li et al., ICML 2023)."""
import hashlib
import time
from dataclasses import dataclass
from typing import Dict, Mapping, Optional, Sequence, Union

import numpy as np
import torch

from .cache import InteractionCache, model_fingerprint
from .estimator import (ImageInteractions, InteractionSettings, image_interactions,
                        interaction_strength)
from .outputs import ClassifierScorer
from .progress import AnalysisProgress


@dataclass
class LabelledImage:
    """One image as the dataset pipeline packs it.

    Args:
        name: where it comes from (for messages), e.g. its path.
        image: (3, H, W) uint8 tensor in the pipeline's channel order (BGR after
            ``LoadImageFromFile``; the model's data preprocessor converts it).
        label: ground-truth class index.
    """

    name: str
    image: torch.Tensor
    label: int

    @property
    def key(self) -> str:
        """Hash of the pixels and the label: seeds the draws and names the cache entry (``f``
        depends on the label, so the same crop under another label is another entry)."""
        data = self.image.detach().cpu().contiguous()
        digest = hashlib.sha1(f'{tuple(data.shape)}:{data.dtype}:{self.label};'.encode())
        digest.update(data.reshape(-1).view(torch.uint8).numpy().tobytes())
        return digest.hexdigest()


@dataclass
class InteractionResult:
    """One model's curve.

    Args:
        name: the model's name.
        orders: (O,) orders m.
        num_patches: n.
        strength: (O,) ``I_m``.
        relative: (O,) ``J_m``.
        num_images: images averaged.
        computed_images: images computed in this call (the others came from the cache).
        seconds: wall time of this call's forwards for the model.
    """

    name: str
    orders: np.ndarray
    num_patches: int
    strength: np.ndarray
    relative: np.ndarray
    num_images: int
    computed_images: int = 0
    seconds: float = 0.

    @property
    def ratios(self) -> np.ndarray:
        """m / n, the x axis of the paper's plot."""
        return self.orders / self.num_patches


def normalized_input(model: torch.nn.Module, image: torch.Tensor) -> torch.Tensor:
    """(3, H, W) float input of ``model`` for a packed image, through its data preprocessor."""
    preprocessor = getattr(model, 'data_preprocessor', None)
    if preprocessor is None:
        raise TypeError(f'{type(model).__name__} has no data_preprocessor; the analysis needs an '
                        'mmengine BaseModel (e.g. an MMPretrain ImageClassifier).')
    with torch.no_grad():
        data = preprocessor(dict(inputs=[image], data_samples=None), False)
    return data['inputs'][0].float()


def analyze_interactions(models: Mapping[str, torch.nn.Module],
                         images: Sequence[LabelledImage],
                         settings: InteractionSettings,
                         cache: Optional[InteractionCache] = None,
                         device: Union[str, torch.device, None] = None,
                         progress_interval: float = 10.) -> Dict[str, InteractionResult]:
    """``I_m`` and ``J_m`` of each model on the same images, pairs and contexts.

    Args:
        models: name -> classifier called as ``model(inputs, mode='tensor')`` for logits, with
            a ``data_preprocessor`` that normalises the packed images.
        images: the labelled images.
        settings: the protocol.
        cache: per-image result cache; images already in it are not recomputed.
        device: where the forwards run; defaults to CUDA when available.
        progress_interval: seconds between progress lines.

    Returns:
        name -> the model's result, in the order of ``models``.
    """
    if not models:
        raise ValueError('No model to analyse.')
    if not images:
        raise ValueError('No image to analyse.')
    device = torch.device(device or ('cuda' if torch.cuda.is_available() else 'cpu'))
    keys = [image.key for image in images]
    fingerprints = {name: model_fingerprint(model) for name, model in models.items()}
    done: Dict[str, Dict[int, ImageInteractions]] = {name: {} for name in models}
    if cache is not None:
        for name in models:
            for index, key in enumerate(keys):
                found = cache.load(fingerprints[name], settings, key)
                if found is not None:
                    done[name][index] = found
    computed = {name: len(images) - len(done[name]) for name in models}
    todo = sum(computed.values())
    progress = AnalysisProgress(todo * settings.forwards_per_image(), progress_interval)
    cached = sum(len(d) for d in done.values())
    if cached:
        progress.update(0, f'{cached} (model, image) results from the cache', force=True)
    for name, model in models.items():
        model.to(device).eval()
    seconds = {name: 0. for name in models}
    for index, image in enumerate(images):
        for name, model in models.items():
            if index in done[name]:
                continue
            where = f'{name}: image {index + 1}/{len(images)}'
            scorer = ClassifierScorer(model, settings.output, settings.amp)
            start = time.perf_counter()
            result = image_interactions(
                scorer, normalized_input(model, image.image.to(device)), image.label,
                keys[index], settings,
                on_order=lambda o, n, where=where: progress.update(
                    n, f'{where}, order {o + 1}/{len(settings.orders)}'))
            seconds[name] += time.perf_counter() - start
            done[name][index] = result
            if cache is not None:
                cache.save(fingerprints[name], settings, keys[index], result)
            progress.update(0, f'{where} done', force=True)
    results = {}
    for name in models:
        per_image = [done[name][index] for index in range(len(images))]
        strength, relative = interaction_strength(per_image)
        results[name] = InteractionResult(name, np.asarray(settings.orders),
                                          settings.num_patches, strength, relative, len(images),
                                          computed[name], seconds[name])
    return results
