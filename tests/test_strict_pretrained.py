"""Pretrained(strict=True) loads everything or stops with the missing keys and the prefix fix."""
import pytest
import torch
from mmengine.model.weight_init import PretrainedInit
from mmpretrain.registry import MODELS, WEIGHT_INITIALIZERS

from a2mim_plugin.models.utils import StrictPretrainedInit


def _a2mim_checkpoint(tmp_path, depth=18):
    backbone = MODELS.build(dict(type='A2MIMResNet', depth=depth, mask_layer=3, mask_init=1e-6))
    backbone.init_weights()
    state = {f'backbone.{k}': v for k, v in backbone.state_dict().items()}
    state['neck.decoder.0.weight'] = torch.zeros(1)
    path = tmp_path / 'pretrain.pth'
    torch.save({'state_dict': state}, path)
    return path, backbone


def _plain(path, **init):
    return MODELS.build(dict(type='ResNet', depth=18, init_cfg=dict(
        type='Pretrained', checkpoint=str(path), **init)))


@pytest.mark.parametrize('strict', [False, True])
def test_loads_every_tensor_exactly(tmp_path, strict):
    """zero_init_residual and the children's own init must not overwrite the loaded weights."""
    path, source = _a2mim_checkpoint(tmp_path)
    plain = _plain(path, prefix='backbone.', strict=strict)
    plain.init_weights()
    for key, value in plain.state_dict().items():
        assert torch.equal(value, source.state_dict()[key]), key


def test_wrong_prefix_names_the_fix(tmp_path):
    path, _ = _a2mim_checkpoint(tmp_path)
    plain = _plain(path, prefix='encoder.', strict=True)
    with pytest.raises(RuntimeError, match=r"no key .* starts with 'encoder\.'.*prefix='backbone\.'"):
        plain.init_weights()


def test_missing_prefix_lists_missing_keys(tmp_path):
    path, _ = _a2mim_checkpoint(tmp_path)
    plain = _plain(path, strict=True)
    with pytest.raises(RuntimeError) as err:
        plain.init_weights()
    message = str(err.value)
    assert 'missing (' in message and 'conv1.weight' in message
    assert "Likely fix: prefix='backbone.'" in message


def test_stock_behaviour_without_strict_only_warns(tmp_path):
    path, _ = _a2mim_checkpoint(tmp_path)
    _plain(path).init_weights()  # no prefix: nothing loads, and stock Pretrained only warns


def test_new_keys_must_be_declared(tmp_path):
    path, _ = _a2mim_checkpoint(tmp_path)
    state = torch.load(path)['state_dict']
    torch.save({'state_dict': {k: v for k, v in state.items()
                               if not k.startswith('backbone.layer4.')}}, path)
    with pytest.raises(RuntimeError, match=r'missing \(\d+\): layer4\.'):
        _plain(path, prefix='backbone.', strict=True).init_weights()
    ok = _plain(path, prefix='backbone.', strict=True, allow_missing=[r'^layer4\.'])
    ok.init_weights()
    assert torch.equal(ok.conv1.weight, state['backbone.conv1.weight'])


def test_registered_as_pretrained_in_each_codebase():
    assert WEIGHT_INITIALIZERS.get('Pretrained') is StrictPretrainedInit
    assert issubclass(StrictPretrainedInit, PretrainedInit)
    from mmdet.registry import WEIGHT_INITIALIZERS as DET
    from mmseg.registry import WEIGHT_INITIALIZERS as SEG
    assert DET.get('Pretrained') is StrictPretrainedInit
    assert SEG.get('Pretrained') is StrictPretrainedInit
    with pytest.raises(ValueError, match='checkpoint path'):
        WEIGHT_INITIALIZERS.build(dict(type='Pretrained', checkpoint='', strict=True))
