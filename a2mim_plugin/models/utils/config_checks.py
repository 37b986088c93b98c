"""Checks that the parts of an A2MIM config agree with each other (Li et al., ICML 2023).

Every message reads "<what is wrong>: <key>=<value> but <other key>=<value>; set <key>=<value>"
so that a wrong edit of a shipped config names the key to fix. The build-time geometry check
runs the backbone once in eval mode without gradients (no dropout, no BN statistics update, the
global RNG state restored), so it cannot change the numbers of a valid config.
"""
from typing import Optional, Sequence, Tuple

import torch
from torch import nn

from .latent_map import LatentLayout, find_sequence_layout, sequence_candidates

DEFAULT_PROBE_SIZE = 224


def _probe_size(backbone: nn.Module) -> int:
    """The input side the backbone is built for (``img_size``), else 224."""
    size = getattr(backbone, 'img_size', None)
    if isinstance(size, (tuple, list)):
        size = size[0]
    return int(size) if size else DEFAULT_PROBE_SIZE


def backbone_output_shape(backbone: nn.Module) -> Optional[Tuple[Tuple[int, ...], int]]:
    """Shape of the last output for one image, and the input side it was measured at.

    Reuses the injection's dry run when there was one; otherwise runs one eval-mode forward
    without gradients. Returns None when the backbone lives on the meta device and cannot run.
    """
    injection = getattr(backbone, 'mask_injection', None)
    found = getattr(injection, 'dry_run', None)
    if found is not None:
        return tuple(found.output_shape), found.input_size
    first = next(iter(backbone.parameters()), None)
    device = first.device if first is not None else torch.device('cpu')
    dtype = first.dtype if first is not None and first.is_floating_point() else torch.float32
    size = _probe_size(backbone)
    modes = {module: module.training for module in backbone.modules()}
    try:
        with torch.random.fork_rng(devices=[]), torch.no_grad():
            backbone.eval()
            outs = backbone(torch.zeros(1, 3, size, size, device=device, dtype=dtype))
    except Exception as err:  # noqa: BLE001 -- reported with the keys to fix
        if device.type == 'meta':
            return None
        raise ValueError(
            f'the backbone cannot run at its input size: model.backbone.type='
            f'{type(backbone).__name__} failed on a {size}x{size} input ({type(err).__name__}: '
            f'{err}); set model.backbone.img_size to the crop of the pipeline') from err
    finally:
        for module, mode in modes.items():
            module.training = mode
    last = outs[-1] if isinstance(outs, (tuple, list)) else outs
    return tuple(last.shape[1:]), size


def check_decoder_fits_backbone(backbone: nn.Module, neck: nn.Module) -> LatentLayout:
    """Decoder ``in_channels`` / ``encoder_stride`` vs the backbone's last output.

    Returns:
        How the last output holds the decoder's grid: a map, or a token sequence that
        :meth:`LatentLayout.to_map` folds into one.

    Raises:
        ValueError: naming ``model.neck.in_channels`` or ``model.neck.encoder_stride`` and the
            value to set.
    """
    decoder = getattr(neck, 'decoder', None)
    if not isinstance(decoder, nn.Sequential) or not isinstance(decoder[0], nn.Conv2d) or \
            not isinstance(decoder[-1], nn.PixelShuffle):
        return LatentLayout()  # not a SimMIM-style linear decoder: nothing to compare
    measured = backbone_output_shape(backbone)
    if measured is None:
        return LatentLayout()
    shape, size = measured
    name = type(backbone).__name__
    in_channels, stride = decoder[0].in_channels, decoder[-1].upscale_factor
    if len(shape) == 2:
        return _check_sequence_output(name, shape, size, in_channels, stride)
    if len(shape) != 3:
        raise ValueError(
            f'the backbone output is not a feature map: model.backbone.type={name} returns '
            f'shape {("B", *shape)} but model.neck.type={type(neck).__name__} needs (B, C, h, w) '
            "or a patch-token sequence; set model.backbone.out_type='featmap' (ViT), "
            'gap_before_final_norm=False (ConvNeXt, HorNet, EdgeNeXt, TinyViT) or out_indices to '
            'end at the last stage')
    channels, h, w = shape
    if in_channels != channels:
        raise ValueError(
            f'decoder input channels differ from the backbone output: model.neck.in_channels='
            f'{in_channels} but model.backbone.type={name} outputs {channels} channels; set '
            f'model.neck.in_channels={channels}')
    if h != w or size % h:
        return LatentLayout()  # a non-square or padded grid: the head reports it per batch
    if stride * h != size:
        raise ValueError(
            f'decoder stride differs from the backbone output stride: model.neck.encoder_stride='
            f'{stride} but model.backbone.type={name} maps a {size}x{size} input to a {h}x{w} '
            f'feature map (stride {size // h}); set model.neck.encoder_stride={size // h}')
    return LatentLayout()


def _check_sequence_output(name: str, shape: Tuple[int, int], size: int, in_channels: int,
                           stride: int) -> LatentLayout:
    """A (B, C, L) or (B, n + L, C) last output on the decoder's grid (MlpMixer, raw ViT)."""
    cells = (size // stride)**2 if size % stride == 0 else -1
    layout = find_sequence_layout(shape, cells, in_channels, stride)
    if layout is not None:
        return layout
    channels = sorted({c for _, c in sequence_candidates(shape, cells)})
    if channels:
        raise ValueError(
            f'decoder input channels differ from the backbone output: model.neck.in_channels='
            f'{in_channels} but model.backbone.type={name} returns tokens of shape '
            f'{("B", *shape)} ({" or ".join(map(str, channels))} channels); set '
            f'model.neck.in_channels={channels[0]}')
    strides = [s for s in range(1, size + 1) if size % s == 0 and any(
        c == in_channels for _, c in sequence_candidates(shape, (size // s)**2))]
    if strides:
        raise ValueError(
            f'decoder stride differs from the backbone output stride: model.neck.encoder_stride='
            f'{stride} but model.backbone.type={name} returns tokens of shape '
            f'{("B", *shape)} for a {size}x{size} input (stride {strides[0]}); set '
            f'model.neck.encoder_stride={strides[0]}')
    raise ValueError(
        f'the backbone output is not a feature map: model.backbone.type={name} returns shape '
        f'{("B", *shape)}, which is no (B, C, L) or (B, L, C) patch sequence for '
        f'model.neck.in_channels={in_channels}; set model.backbone.out_type=\'featmap\' or '
        'out_indices to end at the last stage')


def check_head_fits_decoder(head: nn.Module, neck: nn.Module) -> None:
    """The head averages its spatial loss over the channels the decoder predicts."""
    decoder = getattr(neck, 'decoder', None)
    head_channels = getattr(head, 'encoder_in_channels', None)
    if not isinstance(decoder, nn.Sequential) or head_channels is None or \
            not isinstance(decoder[0], nn.Conv2d) or not isinstance(decoder[-1], nn.PixelShuffle):
        return
    out_channels = decoder[0].out_channels // decoder[-1].upscale_factor**2
    if head_channels != out_channels:
        raise ValueError(
            f'head and decoder disagree on the image channels: model.head.encoder_in_channels='
            f'{head_channels} but model.neck predicts {out_channels} channels; set '
            f'model.head.encoder_in_channels={out_channels}')


def check_batch_has_mask(data_samples: Sequence) -> None:
    """Every sample must carry the ``mask`` written by ``SimMIMMaskGenerator``."""
    missing = [i for i, sample in enumerate(data_samples) if 'mask' not in sample]
    if missing:
        raise ValueError(
            f'the batch carries no mask: data_samples[{missing[0]}].mask is missing but '
            'model.type=A2MIM reconstructs the masked cells; set train_dataloader.dataset.'
            "pipeline to contain dict(type='SimMIMMaskGenerator', input_size=<crop>, "
            'mask_patch_size=..., model_patch_size=..., mask_ratio=...) before '
            "dict(type='PackInputs')")


def check_input_matches_img_size(backbone: nn.Module, image_hw: Tuple[int, int]) -> None:
    """A ViT / Swin built for ``img_size`` must get crops of that size (its position tables
    are sized for one patch grid)."""
    size = getattr(backbone, 'img_size', None)
    if size is None or not hasattr(backbone, 'patch_embed'):
        return
    size = tuple(size) if isinstance(size, (tuple, list)) else (size, size)
    if tuple(image_hw) != size:
        raise ValueError(
            f'the crop differs from the backbone image size: model.backbone.img_size={size[0]} '
            f'but the pipeline crops {image_hw[0]}x{image_hw[1]} images; set '
            f'model.backbone.img_size={image_hw[0]} (or the crop in train_dataloader.dataset.'
            f'pipeline, RandomResizedCrop.scale and SimMIMMaskGenerator.input_size, to {size[0]})')


# Transforms that set the crop size, and the argument that holds it.
CROP_KEYS = {'RandomResizedCrop': 'scale', 'CenterCrop': 'crop_size', 'RandomCrop': 'crop_size',
             'Resize': 'scale'}


def _side(value) -> Optional[int]:
    if isinstance(value, int):
        return value
    if isinstance(value, (tuple, list)) and len(value) == 2 and value[0] == value[1]:
        return int(value[0])
    return None


def check_mask_pipeline(pipeline: Sequence[dict],
                        key: str = 'train_dataloader.dataset.pipeline') -> None:
    """The pre-training pipeline makes the mask, for the crop it produces.

    Raises:
        ValueError: no ``SimMIMMaskGenerator``, or its ``input_size`` differs from the crop.
    """
    types = [str(t.get('type', '')).split('.')[-1] for t in pipeline]
    if 'SimMIMMaskGenerator' not in types:
        raise ValueError(
            f'the pipeline makes no mask: {key} has types {types} but model.type=A2MIM needs '
            f"data_samples.mask; set {key} to contain dict(type='SimMIMMaskGenerator', "
            'input_size=<crop>, mask_patch_size=..., model_patch_size=..., mask_ratio=...) '
            "before dict(type='PackInputs')")
    index = types.index('SimMIMMaskGenerator')
    mask_gen = pipeline[index]
    crop = None
    for t, name in zip(pipeline[:index], types[:index]):
        if name in CROP_KEYS and CROP_KEYS[name] in t:
            crop = (name, CROP_KEYS[name], _side(t[CROP_KEYS[name]]))
    input_size = mask_gen.get('input_size', 192)
    if crop is not None and crop[2] is not None and crop[2] != input_size:
        raise ValueError(
            f'the mask is made for another image size than the crop: {key} '
            f'SimMIMMaskGenerator.input_size={input_size} but {crop[0]}.{crop[1]}={crop[2]}; '
            f'set SimMIMMaskGenerator.input_size={crop[2]}')
