"""Check the pre-training pipeline against the A2MIM model before the first iteration."""
from mmengine.hooks import Hook
from mmpretrain.registry import HOOKS

from ...models.utils.config_checks import check_loaded_channels, check_mask_pipeline


@HOOKS.register_module()
class MaskPipelineCheckHook(Hook):
    """Fail before training when ``train_dataloader.dataset.pipeline`` makes no mask, makes
    it for another size than its crop (A2MIM, Li et al., ICML 2023, needs one mask per crop), or
    loads images of another channel count than the model is built for.

    The same mistakes are caught at the first batch by the algorithm; this hook names the
    pipeline entries before any iteration runs.
    """

    priority = 'VERY_HIGH'

    def before_train(self, runner) -> None:
        dataset = runner.cfg.get('train_dataloader', {}).get('dataset', {})
        while 'pipeline' not in dataset and 'dataset' in dataset:  # wrappers (RepeatDataset)
            dataset = dataset['dataset']
        if 'pipeline' in dataset:
            check_mask_pipeline(dataset['pipeline'])
            model = getattr(runner.model, 'module', runner.model)
            if hasattr(model, 'image_channels'):
                check_loaded_channels(dataset['pipeline'], model.image_channels)
