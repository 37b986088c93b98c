"""Pictures of A2MIM reconstructions during training and for a checkpoint."""
from typing import Dict, Optional

import numpy as np
import torch
from mmengine.dist import is_main_process
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper
from mmpretrain.registry import HOOKS
from torchvision.utils import make_grid

from ...models.utils import upsample_mask

COLUMNS = ('original', 'masked input', 'prediction', 'prediction + visible')
SPECTRUM_COLUMNS = ('spectrum of original', 'spectrum of prediction + visible')


def denormalize(model: torch.nn.Module, images: torch.Tensor) -> torch.Tensor:
    """Normalised (B, 3, H, W) images back to RGB in [0, 1] (clipped), with the model's
    data preprocessor's mean and std."""
    preprocessor = model.data_preprocessor
    if getattr(preprocessor, '_enable_normalize', False):
        images = images * preprocessor.std + preprocessor.mean
    else:
        images = images * 255.
    return (images.float() / 255.).clamp(0., 1.)


def log_amplitude_spectra(images: torch.Tensor) -> torch.Tensor:
    """Centred log amplitude spectra ``log(1 + |FFT|)`` of (B, 3, H, W) images in [0, 1],
    averaged over channels, as (B, 3, H, W) grey tiles (unscaled). The FFT is unnormalised
    (a sum over pixels), so the logarithm compresses the range from the DC term (about
    H W / 2) down to the weak high frequencies instead of acting as the identity."""
    spectrum = torch.fft.fftshift(torch.fft.fft2(images.float()), dim=(-2, -1))
    return torch.log1p(spectrum.abs()).mean(dim=1, keepdim=True).expand_as(images)


def reconstruction_columns(model: torch.nn.Module, data_batch: dict,
                           spectrum: bool = False) -> Dict[str, torch.Tensor]:
    """The picture's columns for a raw data batch, each (B, 3, H, W) RGB in [0, 1].

    The batch goes through the model's data preprocessor and masked forward pass
    (``model.reconstruct``) in eval mode without gradient; train mode is restored afterwards.

    Args:
        model: an ``A2MIM`` model (anything with ``data_preprocessor`` and ``reconstruct``).
        data_batch: ``dict(inputs=[...], data_samples=[...])`` whose samples carry ``mask``.
        spectrum: add the log amplitude spectra of the original and of the pasted-back
            reconstruction (the domain of A2MIM's Fourier loss), both mapped to [0, 1] with the
            minimum and maximum of the original's spectrum, so a row's two tiles compare.

    Returns:
        ``original``, ``masked input`` (what the network sees: masked pixels filled with the
        image's RGB mean for A2MIM), ``prediction`` (the decoder's output everywhere),
        ``prediction + visible`` (the visible pixels of the original pasted back over the
        prediction), and with ``spectrum`` the two spectra; all de-normalised and clipped.
    """
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            data = model.data_preprocessor(data_batch, training=False)
            inputs = data['inputs']  # (B, 3, H, W) normalised
            mask = torch.stack([s.mask for s in data['data_samples']]).to(inputs.device)
            out = model.reconstruct(inputs, mask)
    finally:
        model.train(was_training)
    pred = out['pred'].to(inputs.dtype)
    pixel_mask = upsample_mask(mask, inputs.shape[-2:]).bool()  # (B, 1, H, W)
    columns = {
        COLUMNS[0]: denormalize(model, inputs),
        COLUMNS[1]: denormalize(model, out['input']),
        COLUMNS[2]: denormalize(model, pred),
        COLUMNS[3]: denormalize(model, torch.where(pixel_mask, pred, inputs)),
    }
    if spectrum:
        original = log_amplitude_spectra(columns[COLUMNS[0]])
        pasted = log_amplitude_spectra(columns[COLUMNS[3]])
        low = original.flatten(1).amin(dim=1)[:, None, None, None]
        span = (original.flatten(1).amax(dim=1)[:, None, None, None] - low).clamp_min(1e-6)
        columns[SPECTRUM_COLUMNS[0]] = ((original - low) / span).clamp(0., 1.)
        columns[SPECTRUM_COLUMNS[1]] = ((pasted - low) / span).clamp(0., 1.)
    return columns


def reconstruction_picture(model: torch.nn.Module, data_batch: dict,
                           spectrum: bool = False, padding: int = 2) -> np.ndarray:
    """One row per image of :func:`reconstruction_columns`, as an (H', W', 3) uint8 RGB array
    with white ``padding`` pixels between the tiles."""
    columns = reconstruction_columns(model, data_batch, spectrum)
    tiles = torch.stack(list(columns.values()), dim=1).flatten(0, 1)  # (B * k, 3, H, W)
    grid = make_grid(tiles, nrow=len(columns), padding=padding, pad_value=1.0)
    return (grid * 255).round().byte().permute(1, 2, 0).cpu().numpy()


@HOOKS.register_module()
class ReconstructionVisHook(Hook):
    """Adds a grid of A2MIM reconstructions to the runner's visualizer.

    Every ``interval`` training iterations (and after the last one) the first ``num_images``
    images of the current batch go through the model's masked forward pass in eval mode (no
    gradient, no drop-path randomness, no BatchNorm statistics update). Each row shows the
    original crop, the network input (masked pixels filled with the image's RGB mean for
    A2MIM), the prediction and the prediction with the visible pixels pasted back, all
    de-normalised and clipped; with ``spectrum=True`` also the log amplitude spectra of the
    original and of the pasted-back reconstruction (where A2MIM's Fourier loss acts, Li et al.,
    ICML 2023, Sec. 3.3). The grid goes through ``runner.visualizer.add_image``, so every
    configured backend receives it (local PNG files under ``vis_data/vis_image/``,
    TensorBoard, ...). ``tools/visualize_reconstruction.py`` draws the same picture for a
    checkpoint.

    Args:
        interval: iterations between two pictures. Defaults to 1000.
        num_images: images per picture (at most the batch size). Defaults to 4.
        spectrum: add the two spectrum columns. Defaults to False.
        name: image name passed to the visualizer. Defaults to 'reconstruction'.
    """

    priority = 'LOW'

    def __init__(self, interval: int = 1000, num_images: int = 4, spectrum: bool = False,
                 name: str = 'reconstruction') -> None:
        if interval < 1 or num_images < 1:
            raise ValueError('ReconstructionVisHook: interval and num_images must be >= 1, '
                             f'got {interval} and {num_images}.')
        self.interval = interval
        self.num_images = num_images
        self.spectrum = spectrum
        self.name = name

    def after_train_iter(self, runner, batch_idx: int, data_batch: Optional[dict] = None,
                         outputs: Optional[dict] = None) -> None:
        if data_batch is None or not is_main_process():
            return
        if not (self.every_n_train_iters(runner, self.interval) or self.is_last_train_iter(runner)):
            return
        model = runner.model.module if is_model_wrapper(runner.model) else runner.model
        if not hasattr(model, 'reconstruct'):
            raise TypeError(f'ReconstructionVisHook needs a model with reconstruct(); '
                            f'{type(model).__name__} has none.')
        grid = self.make_grid(model, data_batch)
        runner.visualizer.add_image(self.name, grid, step=runner.iter + 1)

    def make_grid(self, model: torch.nn.Module, data_batch: dict) -> np.ndarray:
        """The (H', W', 3) uint8 RGB picture for the first ``num_images`` of a raw batch."""
        batch = dict(inputs=data_batch['inputs'][:self.num_images],
                     data_samples=data_batch['data_samples'][:self.num_images])
        return reconstruction_picture(model, batch, self.spectrum)
