"""Make a runner's model and optimizer traceable by ``torch.compile`` (``compile=True``)."""
from mmengine.config import ConfigDict
from mmengine.hooks import Hook
from mmengine.logging import print_log
from mmengine.model import is_model_wrapper
from mmengine.optim import OptimWrapperDict
from mmpretrain.registry import HOOKS

from ...models.utils.compile_ready import python_scalar_attributes


@HOOKS.register_module()
class CompileReadyHook(Hook):
    """Removes the stock causes of graph breaks before mmengine compiles ``train_step``.

    mmengine 0.10.7 calls ``before_run`` before it compiles ``model.train_step``
    (``--cfg-options compile=True``). This hook then:

    * turns NumPy scalar attributes of the model's modules into Python scalars
      (:func:`python_scalar_attributes`): MMPretrain's ``VisionTransformer`` / ``BEiTViT``
      hand NumPy drop-path rates to mmcv's ``DropPath``, one graph break per block; this covers
      the stock classifiers, detectors and segmentors of the fine-tuning and transfer configs;
    * makes the optimizer's param groups plain dicts: mmengine builds the groups that
      ``paramwise_cfg`` makes as ``ConfigDict`` s, and dynamo (torch 2.14) cannot trace the
      optimizer step over them (``InternalTorchDynamoError: 'UserDefinedDictVariable' object
      has no attribute 'items'``).

    Neither changes a value: the numerics and the checkpoint keys stay the same, compiled or
    not, so the hook is on in every shipped config.
    """

    priority = 'VERY_HIGH'

    def before_run(self, runner) -> None:
        model = runner.model.module if is_model_wrapper(runner.model) else runner.model
        converted = python_scalar_attributes(model)
        if converted:
            print_log(f'CompileReadyHook: {len(converted)} NumPy scalar attributes made Python '
                      f'scalars (e.g. {converted[0]})', logger='current')
        wrapper = getattr(runner, 'optim_wrapper', None)
        if wrapper is None or isinstance(wrapper, dict):  # not built (test / val runs)
            return
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
