"""Plain-backbone features for k-NN evaluation: extraction, pooling, L2 norm, rank shards.

The features are what fine-tuning and transfer see: the backbone alone (no mask, no fill,
no decoder), in eval mode, its last output pooled to one vector per image. Each process
extracts a contiguous shard of the requested indices; :func:`gather_rows` concatenates the
shards in rank order, so the result is the single-process one.
"""
import contextlib
from typing import Callable, Iterator, List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from mmengine.dataset import default_collate
from mmengine.dist import all_gather, get_dist_info
from mmengine.model import is_model_wrapper
from torch import nn
from torch.utils.data import DataLoader

from ..engine.hooks.rng_state_hook import get_rng_state, set_rng_state

POOL_MODES = ('auto', 'avg', 'cls')


def unwrap(model: nn.Module) -> nn.Module:
    """The model inside a DDP / FSDP wrapper (the model itself otherwise)."""
    return model.module if is_model_wrapper(model) else model


def plain_backbone(model: nn.Module) -> nn.Module:
    """The backbone of an algorithm or classifier (``model.backbone``), else the model."""
    model = unwrap(model)
    backbone = getattr(model, 'backbone', None)
    return model if backbone is None else backbone


def has_class_token(backbone: nn.Module) -> bool:
    """Whether the backbone carries a class token (MMPretrain ViTs with ``with_cls_token``)."""
    return getattr(backbone, 'cls_token', None) is not None \
        and getattr(backbone, 'num_extra_tokens', 0) > 0


@contextlib.contextmanager
def token_output(backbone: nn.Module) -> Iterator[None]:
    """Make an MMPretrain ViT return its raw token sequence (class token first) for the
    duration of the block; its ``out_type`` is restored afterwards."""
    old = backbone.out_type
    backbone.out_type = 'raw'
    try:
        yield
    finally:
        backbone.out_type = old


def check_pool(pool: str, backbone: nn.Module) -> str:
    """The effective pooling ('avg' or 'cls') for ``pool`` on ``backbone``."""
    if pool not in POOL_MODES:
        raise ValueError(f'k-NN pool must be one of {POOL_MODES}, got {pool!r}.')
    if pool == 'cls' and not (has_class_token(backbone) and hasattr(backbone, 'out_type')):
        raise ValueError(f"k-NN pool='cls': {type(backbone).__name__} has no class token; use "
                         "pool='avg' (or 'auto').")
    if pool == 'auto':
        return 'cls' if has_class_token(backbone) and hasattr(backbone, 'out_type') else 'avg'
    return pool


def pool_output(output, pool: str, num_extra_tokens: int = 0) -> torch.Tensor:
    """One (B, C) vector per image from a backbone's output (the last element of a tuple).

    Args:
        output: a tensor or a tuple/list of them; the last one is pooled: (B, C, H, W) maps are
            averaged over space, (B, L, C) token sequences give their class token (``pool``
            'cls') or the mean of their patch tokens, (B, C) vectors are kept.
        pool: 'avg' or 'cls'.
        num_extra_tokens: leading non-patch tokens of a sequence (skipped by 'avg').
    """
    last = output[-1] if isinstance(output, (tuple, list)) else output
    if isinstance(last, (tuple, list)):  # e.g. (patch_map, cls_token) of older ViTs
        last = last[-1] if pool == 'cls' else last[0]
    if last.dim() == 4:
        return last.float().mean(dim=(2, 3))
    if last.dim() == 3:
        if pool == 'cls':
            return last[:, 0].float()
        return last[:, num_extra_tokens:].float().mean(dim=1)
    if last.dim() == 2:
        return last.float()
    raise ValueError(f'k-NN: cannot pool a backbone output of shape {tuple(last.shape)}.')


def backbone_features(model: nn.Module, inputs: torch.Tensor, pool: str = 'auto'
                      ) -> torch.Tensor:
    """L2-normalised (B, C) plain-backbone features of normalised (B, 3, H, W) inputs."""
    backbone = plain_backbone(model)
    mode = check_pool(pool, backbone)
    context = token_output(backbone) if mode == 'cls' else contextlib.nullcontext()
    with context:
        out = backbone(inputs)
    feats = pool_output(out, mode, getattr(backbone, 'num_extra_tokens', 0))
    return F.normalize(feats, dim=1)


def shard(indices: Sequence[int], rank: int, world_size: int) -> List[int]:
    """The contiguous part of ``indices`` that process ``rank`` of ``world_size`` handles."""
    n = len(indices)
    return list(indices[rank * n // world_size:(rank + 1) * n // world_size])


def gather_rows(local: torch.Tensor) -> torch.Tensor:
    """Concatenate every rank's (n_r, ...) tensor in rank order (sizes may differ by one)."""
    rank, world_size = get_dist_info()
    if world_size == 1:
        return local
    sizes = all_gather(torch.tensor([local.shape[0]], device=local.device))
    sizes = [int(s.item()) for s in sizes]
    padded = local.new_zeros((max(sizes), *local.shape[1:]))
    padded[:local.shape[0]] = local
    parts = all_gather(padded)
    return torch.cat([part[:size] for part, size in zip(parts, sizes)])


@contextlib.contextmanager
def evaluation_mode(model: nn.Module) -> Iterator[None]:
    """Eval mode, no gradient, and the global RNG streams (python, numpy, torch, CUDA) exactly
    as before; the previous train/eval mode is restored."""
    was_training = model.training
    state = get_rng_state()
    model.eval()
    try:
        with torch.no_grad():
            yield
    finally:
        model.train(was_training)
        set_rng_state(state)


def extract_features(model: nn.Module, dataset, indices: Sequence[int], batch_size: int = 64,
                     num_workers: int = 0, pool: str = 'auto', dtype: torch.dtype = torch.float16,
                     progress: Optional[Callable[[int], None]] = None, gather: bool = True
                     ) -> Tuple[torch.Tensor, torch.Tensor]:
    """Features and labels of ``dataset[indices]``: this rank's shard is extracted here;
    with ``gather`` all shards are concatenated (every rank gets the whole, in ``indices``
    order), without it the shard is returned.

    Args:
        model: an algorithm or classifier with ``data_preprocessor`` and ``backbone``.
        dataset: an MMPretrain dataset with labels whose pipeline packs ``inputs``.
        indices: dataset indices, in the order of the output rows.
        batch_size: images per forward.
        num_workers: data-loading workers.
        pool: 'auto', 'avg' or 'cls' (see :func:`check_pool`).
        dtype: storage dtype of the features (fp16 halves the bank's memory).
        progress: called with the number of images of each finished batch.
        gather: return all ranks' rows instead of this rank's shard.

    Returns:
        ``(features (N, C) dtype, labels (N, ) int64)`` on the model's device.
    """
    inner = unwrap(model)
    rank, world_size = get_dist_info()
    local = shard(indices, rank, world_size)
    loader = DataLoader(dataset, batch_size=batch_size, sampler=local, num_workers=num_workers,
                        collate_fn=default_collate, generator=torch.Generator())
    device = next(inner.parameters()).device
    feats, labels = [], []
    with evaluation_mode(inner):
        for batch in loader:
            data = inner.data_preprocessor(batch, False)
            feats.append(backbone_features(inner, data['inputs'], pool).to(dtype))
            labels.append(torch.cat([s.gt_label for s in batch['data_samples']]).long())
            if progress is not None:
                progress(len(batch['data_samples']))
    if not feats:  # an empty shard still takes part in the gather
        dim = _feature_dim(inner, dataset, indices, pool)
        feats = [torch.zeros((0, dim), dtype=dtype, device=device)]
        labels = [torch.zeros((0, ), dtype=torch.long)]
    feats, labels = torch.cat(feats), torch.cat(labels).to(device)
    return (gather_rows(feats), gather_rows(labels)) if gather else (feats, labels)


def _feature_dim(model: nn.Module, dataset, indices: Sequence[int], pool: str) -> int:
    """Feature width, from one image (for a rank whose shard is empty)."""
    batch = default_collate([dataset[indices[0]]])
    with evaluation_mode(model):
        data = model.data_preprocessor(batch, False)
        return backbone_features(model, data['inputs'], pool).shape[1]
