"""Config switches for the optional fast paths of ``models/utils/fast_paths.py``."""
from mmengine.hooks import Hook
from mmengine.logging import print_log
from mmengine.model import is_model_wrapper
from mmpretrain.registry import HOOKS

from ...models.utils.fast_paths import use_channels_last, use_sdpa_attention


@HOOKS.register_module()
class FastPathsHook(Hook):
    """Turns on the fast paths a config asks for, before training starts (and before mmengine
    compiles ``train_step``).

    Both are off by default: whether one pays off depends on the device (SDPA with an additive
    bias is slower than the manual path on a CPU), and ``bench/gpu_check.sh`` measures on a GPU
    which ones to turn on, e.g. ``--cfg-options default_hooks.fast_paths.sdpa_attention=True``. The fused AdamW step is
    the optimizer's own switch: ``optim_wrapper.optimizer.fused=True``.

    Args:
        sdpa_attention: compute MMPretrain's ``BEiTAttention`` (BEiT-style ViT) and
            ``WindowMSA`` (Swin) with ``F.scaled_dot_product_attention``; same parameters and
            checkpoint keys, fp32 results equal to rounding.
        channels_last: keep the 4-D weights (convolutions) in channels-last memory format.
    """

    priority = 'VERY_HIGH'

    def __init__(self, sdpa_attention: bool = False, channels_last: bool = False) -> None:
        for name, value in (('sdpa_attention', sdpa_attention),
                            ('channels_last', channels_last)):
            if not isinstance(value, bool):
                raise TypeError(f'default_hooks.fast_paths.{name} must be True or False, got '
                                f'{value!r}.')
        self.sdpa_attention = sdpa_attention
        self.channels_last = channels_last

    def before_run(self, runner) -> None:
        model = runner.model.module if is_model_wrapper(runner.model) else runner.model
        if self.sdpa_attention:
            switched = use_sdpa_attention(model)
            if not switched:
                raise ValueError(
                    'default_hooks.fast_paths.sdpa_attention=True, but the model has no '
                    "BEiTAttention or WindowMSA (BEiT-style ViT / Swin): set it to False.")
            print_log(f'FastPathsHook: {switched} attention modules use SDPA', logger='current')
        if self.channels_last:
            converted = use_channels_last(model)
            if not converted:
                raise ValueError('default_hooks.fast_paths.channels_last=True, but the model '
                                 'has no 4-D weight: set it to False.')
            print_log(f'FastPathsHook: {converted} 4-D weights channels-last', logger='current')
