"""Plain-dict optimizer param groups, so ``compile=True`` works with ``paramwise_cfg``."""
from mmengine.config import ConfigDict
from mmengine.hooks import Hook
from mmengine.optim import OptimWrapperDict
from mmpretrain.registry import HOOKS


@HOOKS.register_module()
class PlainParamGroupsHook(Hook):
    """Turns the optimizer's param groups into plain dicts before training starts.

    mmengine 0.10.7 builds the optimizer from a ``ConfigDict`` holding the param groups that
    ``paramwise_cfg`` makes, so each group becomes a ``ConfigDict``. ``torch.compile`` of the
    runner's ``train_step`` (``--cfg-options compile=True``) cannot trace the optimizer step
    over such groups (torch 2.14: ``InternalTorchDynamoError: 'UserDefinedDictVariable' object
    has no attribute 'items'``). The groups keep their keys and values (learning rates, weight
    decay, ``initial_lr`` of the schedulers), so the numerics do not change, with or without
    compilation; a resumed optimizer loads plain dicts anyway.
    """

    priority = 'VERY_HIGH'

    def before_run(self, runner) -> None:
        wrapper = runner.optim_wrapper
        wrappers = wrapper.values() if isinstance(wrapper, OptimWrapperDict) else [wrapper]
        for optim_wrapper in wrappers:
            optimizer = getattr(optim_wrapper, 'optimizer', None)
            if optimizer is None:
                continue
            optimizer.param_groups[:] = [
                _plain(group) if isinstance(group, ConfigDict) else group
                for group in optimizer.param_groups
            ]


def _plain(group: ConfigDict) -> dict:
    """The group as a dict, with the same parameter list object and values."""
    return {key: group[key] for key in group.keys()}
