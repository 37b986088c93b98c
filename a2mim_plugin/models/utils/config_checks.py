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


def _probe_size(backbone: nn.Module) -> Tuple[int, int]:
    """The (H, W) input the backbone is built for (``img_size``), else 224 x 224."""
    size = getattr(backbone, 'img_size', None) or DEFAULT_PROBE_SIZE
    if isinstance(size, (tuple, list)):
        return int(size[0]), int(size[-1])
    return int(size), int(size)


def backbone_output_shape(backbone: nn.Module, image_channels: int = 3
                          ) -> Optional[Tuple[Tuple[int, ...], Tuple[int, int]]]:
    """Shape of the last output for one image, and the (H, W) input it was measured at.

    Reuses the injection's dry run when there was one; otherwise runs one eval-mode forward
    without gradients on a zero image of ``image_channels`` channels. Returns None when the
    backbone lives on the meta device and cannot run.
    """
    injection = getattr(backbone, 'mask_injection', None)
    found = getattr(injection, 'dry_run', None)
    if found is not None:
        return tuple(found.output_shape), (found.input_size, found.input_size)
    first = next(iter(backbone.parameters()), None)
    device = first.device if first is not None else torch.device('cpu')
    dtype = first.dtype if first is not None and first.is_floating_point() else torch.float32
    size = _probe_size(backbone)
    modes = {module: module.training for module in backbone.modules()}
    try:
        with torch.random.fork_rng(devices=[]), torch.no_grad():
            backbone.eval()
            outs = backbone(torch.zeros(1, image_channels, *size, device=device, dtype=dtype))
    except Exception as err:  # noqa: BLE001 -- reported with the keys to fix
        if device.type == 'meta':
            return None
        raise ValueError(
            f'the backbone cannot run at its input size: model.backbone.type='
            f'{type(backbone).__name__} failed on a {size[0]}x{size[1]} input '
            f'({type(err).__name__}: {err}); set model.backbone.img_size to the crop of the '
            'pipeline') from err
    finally:
        for module, mode in modes.items():
            module.training = mode
    last = outs[-1] if isinstance(outs, (tuple, list)) else outs
    return tuple(last.shape[1:]), size


def check_decoder_fits_backbone(backbone: nn.Module, neck: nn.Module,
                                image_channels: int = 3) -> LatentLayout:
    """Decoder ``in_channels`` / ``encoder_stride`` vs the backbone's last output (measured on
    an image of ``image_channels`` channels).

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
    measured = backbone_output_shape(backbone, image_channels)
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
    height, width = size
    if height % h or width % w or height // h != width // w:
        return LatentLayout()  # a padded grid: the head reports it per batch
    if stride * h != height:
        raise ValueError(
            f'decoder stride differs from the backbone output stride: model.neck.encoder_stride='
            f'{stride} but model.backbone.type={name} maps a {height}x{width} input to a '
            f'{h}x{w} feature map (stride {height // h}); set '
            f'model.neck.encoder_stride={height // h}')
    return LatentLayout()


def _cells(size: Tuple[int, int], stride: int) -> int:
    """Patches of an (H, W) input at ``stride``, or -1 when the stride does not tile it."""
    height, width = size
    return (height // stride) * (width // stride) if not height % stride + width % stride else -1


def _check_sequence_output(name: str, shape: Tuple[int, int], size: Tuple[int, int],
                           in_channels: int, stride: int) -> LatentLayout:
    """A (B, C, L) or (B, n + L, C) last output on the decoder's grid (MlpMixer, raw ViT)."""
    cells = _cells(size, stride)
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
    strides = [s for s in range(1, min(size) + 1) if _cells(size, s) > 0 and any(
        c == in_channels for _, c in sequence_candidates(shape, _cells(size, s)))]
    if strides:
        raise ValueError(
            f'decoder stride differs from the backbone output stride: model.neck.encoder_stride='
            f'{stride} but model.backbone.type={name} returns tokens of shape '
            f'{("B", *shape)} for a {size[0]}x{size[1]} input (stride {strides[0]}); set '
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


def image_channels(neck: nn.Module, head: nn.Module) -> int:
    """Channels of the images the model reconstructs: what the linear decoder predicts, else
    the head's ``encoder_in_channels``, else 3."""
    decoder = getattr(neck, 'decoder', None)
    if isinstance(decoder, nn.Sequential) and isinstance(decoder[0], nn.Conv2d) and \
            isinstance(decoder[-1], nn.PixelShuffle):
        return decoder[0].out_channels // decoder[-1].upscale_factor**2
    return int(getattr(head, 'encoder_in_channels', 3))


def backbone_in_channels(backbone: nn.Module) -> Optional[int]:
    """Input channels of the backbone's first convolution (its stem or patch embedding)."""
    first = next((m for m in backbone.modules() if isinstance(m, nn.Conv2d)), None)
    return None if first is None else first.in_channels


CHANNEL_KEYS = ('model.backbone.in_channels, model.neck.out_channels, '
                'model.head.encoder_in_channels and model.data_preprocessor.mean/std')


def check_channels_fit(data_preprocessor: nn.Module, backbone: nn.Module,
                       channels: int) -> None:
    """The data preprocessor and the backbone agree with the ``channels`` the decoder predicts.

    Raises:
        ValueError: a channel swap (``to_rgb``) for non-RGB images, a mean/std of another
            length, or a backbone stem built for other channels; naming the key to set.
    """
    mean = getattr(data_preprocessor, 'mean', None)
    if getattr(data_preprocessor, '_enable_normalize', False) and mean is not None and \
            mean.numel() not in (1, channels):
        raise ValueError(
            f'normalisation and image channels differ: model.data_preprocessor.mean has '
            f'{mean.numel()} values but model.neck.out_channels={channels}; set '
            f'model.data_preprocessor.mean and std to {channels} values (one per channel; '
            "type='MultiChannelDataPreprocessor' for more than 3)")
    if getattr(data_preprocessor, '_channel_conversion', False) and channels != 3:
        raise ValueError(
            'a channel swap needs 3-channel images: model.data_preprocessor.to_rgb (or '
            f'bgr_to_rgb / rgb_to_bgr) is True but model.neck.out_channels={channels}; set '
            'model.data_preprocessor.to_rgb=False')
    first = backbone_in_channels(backbone)
    if first is not None and first != channels:
        raise ValueError(
            f'backbone and decoder disagree on the image channels: model.backbone.type='
            f'{type(backbone).__name__} takes {first}-channel images but model.neck.out_channels='
            f'{channels}; set model.backbone.in_channels={channels} (or model.neck.out_channels '
            f'and model.head.encoder_in_channels to {first})')


def check_input_channels(inputs_channels: int, channels: int) -> None:
    """The batch has the channels the model is built for."""
    if inputs_channels != channels:
        raise ValueError(
            f'the images have {inputs_channels} channels but the model is built for {channels}: '
            f'model.neck.out_channels={channels}; set {CHANNEL_KEYS} to {inputs_channels} '
            f'channels, or load {channels}-channel images (LoadImageFromFile color_type: '
            "'grayscale' gives 1 channel, 'color' 3, 'unchanged' what the file holds)")


# Channels LoadImageFromFile gives for each color_type ('unchanged': what the file holds).
LOADED_CHANNELS = {'color': 3, 'color_ignore_orientation': 3, 'grayscale': 1,
                   'grayscale_ignore_orientation': 1}


def check_loaded_channels(pipeline: Sequence[dict], channels: int,
                          key: str = 'train_dataloader.dataset.pipeline') -> None:
    """``LoadImageFromFile`` loads images of the ``channels`` the model is built for.

    A 1-channel batch would otherwise be broadcast to 3 channels by a 3-value normalisation
    and train silently on wrong inputs.
    """
    for step in pipeline:
        if str(step.get('type', '')).split('.')[-1] != 'LoadImageFromFile':
            continue
        color_type = step.get('color_type', 'color')
        loaded = LOADED_CHANNELS.get(color_type)
        if loaded is not None and loaded != channels:
            raise ValueError(
                f'the pipeline loads {loaded}-channel images but the model is built for '
                f'{channels}: {key} LoadImageFromFile.color_type={color_type!r} but '
                f'model.neck.out_channels={channels}; set {CHANNEL_KEYS} to {loaded} channels, '
                f"or color_type='{'grayscale' if channels == 1 else 'unchanged'}'")


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
            f'the crop differs from the backbone image size: model.backbone.img_size='
            f'{_size_text(size)} but the pipeline crops {image_hw[0]}x{image_hw[1]} images; set '
            f'model.backbone.img_size={_size_text(tuple(image_hw))} (or the crop in '
            f'train_dataloader.dataset.pipeline, RandomResizedCrop.scale and the mask '
            f'generator\'s input_size, to {_size_text(size)})')


def _size_text(hw: Tuple[int, int]) -> str:
    """``224`` for a square size, ``(64, 96)`` (height, width) otherwise."""
    return str(hw[0]) if hw[0] == hw[1] else f'({hw[0]}, {hw[1]})'


# Transforms that write data_samples.mask.
MASK_TRANSFORMS = ('SimMIMMaskGenerator', 'SimMIMRectMaskGenerator')
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
    found = [name for name in MASK_TRANSFORMS if name in types]
    if not found:
        raise ValueError(
            f'the pipeline makes no mask: {key} has types {types} but model.type=A2MIM needs '
            f"data_samples.mask; set {key} to contain dict(type='SimMIMMaskGenerator', "
            'input_size=<crop>, mask_patch_size=..., model_patch_size=..., mask_ratio=...) '
            "(SimMIMRectMaskGenerator for an (H, W) crop) before dict(type='PackInputs')")
    index = types.index(found[0])
    mask_gen = pipeline[index]
    crop = None
    for t, name in zip(pipeline[:index], types[:index]):
        if name in CROP_KEYS and CROP_KEYS[name] in t:
            crop = (name, CROP_KEYS[name], _side(t[CROP_KEYS[name]]))
    input_size = _side(mask_gen.get('input_size', 192))
    if crop is not None and crop[2] is not None and input_size is not None and \
            crop[2] != input_size:
        raise ValueError(
            f'the mask is made for another image size than the crop: {key} '
            f'{found[0]}.input_size={input_size} but {crop[0]}.{crop[1]}={crop[2]}; '
            f'set {found[0]}.input_size={crop[2]}')
