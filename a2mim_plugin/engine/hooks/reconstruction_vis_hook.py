"""Pictures of A2MIM reconstructions during training."""
from typing import Optional, Sequence

import torch
from mmengine.dist import is_main_process
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper
from mmpretrain.registry import HOOKS
from torchvision.utils import make_grid


@HOOKS.register_module()
class ReconstructionVisHook(Hook):
    """Adds a grid of original / masked input / reconstruction to the runner's visualizer.

    Every ``interval`` training iterations (and after the last one) the first ``num_images``
    images of the current batch go through the model's masked forward pass in eval mode (no
    gradient, no drop-path randomness, no BatchNorm statistics update). Each row of the grid
    shows the original crop, the network input (masked pixels filled with the image's RGB
    mean for A2MIM) and the reconstruction, all de-normalised. The grid goes through
    ``runner.visualizer.add_image``, so every configured backend receives it (local PNG files
    under ``vis_data/vis_image/``, TensorBoard, ...).

    Args:
        interval: iterations between two pictures. Defaults to 1000.
        num_images: images per picture (at most the batch size). Defaults to 4.
        name: image name passed to the visualizer. Defaults to 'reconstruction'.
    """

    priority = 'LOW'

    def __init__(self, interval: int = 1000, num_images: int = 4,
                 name: str = 'reconstruction') -> None:
        if interval < 1 or num_images < 1:
            raise ValueError('ReconstructionVisHook: interval and num_images must be >= 1, '
                             f'got {interval} and {num_images}.')
        self.interval = interval
        self.num_images = num_images
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

    def make_grid(self, model: torch.nn.Module, data_batch: dict) -> 'np.ndarray':  # noqa: F821
        """Build the (H', W', 3) uint8 RGB picture for one raw data batch."""
        batch = dict(inputs=data_batch['inputs'][:self.num_images],
                     data_samples=data_batch['data_samples'][:self.num_images])
        was_training = model.training
        model.eval()
        try:
            with torch.no_grad():
                data = model.data_preprocessor(batch, training=False)
                inputs = data['inputs']  # (n, 3, H, W) normalised
                mask = torch.stack([s.mask for s in data['data_samples']]).to(inputs.device)
                out = model.reconstruct(inputs, mask)
        finally:
            model.train(was_training)
        rows = torch.stack([inputs, out['input'], out['pred'].to(inputs.dtype)], dim=1)
        images = self._denormalize(model, rows.flatten(0, 1))  # (3n, 3, H, W) in [0, 1]
        grid = make_grid(images, nrow=3, padding=2, pad_value=1.0)  # (3, H', W')
        return (grid * 255).round().byte().permute(1, 2, 0).cpu().numpy()

    @staticmethod
    def _denormalize(model: torch.nn.Module, images: torch.Tensor) -> torch.Tensor:
        preprocessor = model.data_preprocessor
        if getattr(preprocessor, '_enable_normalize', False):
            images = images * preprocessor.std + preprocessor.mean
        else:
            images = images * 255.
        return (images.float() / 255.).clamp(0., 1.)
