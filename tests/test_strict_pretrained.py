"""StrictPretrained loads everything or stops with the missing keys and the prefix fix."""
import pytest
import torch
from mmpretrain.registry import MODELS, WEIGHT_INITIALIZERS


def _a2mim_checkpoint(tmp_path):
    backbone = MODELS.build(dict(type='A2MIMResNet', depth=18, mask_layer=3, mask_init=1e-6))
    backbone.init_weights()
    state = {f'backbone.{k}': v for k, v in backbone.state_dict().items()}
    state['neck.decoder.0.weight'] = torch.zeros(1)
    path = tmp_path / 'pretrain.pth'
    torch.save({'state_dict': state}, path)
    return path, backbone


def test_loads_every_tensor_and_ignores_only_mask_keys(tmp_path):
    path, source = _a2mim_checkpoint(tmp_path)
    plain = MODELS.build(dict(type='ResNet', depth=18, init_cfg=dict(
        type='StrictPretrained', checkpoint=str(path), prefix='backbone.')))
    plain.init_weights()
    for key, value in plain.state_dict().items():
        assert torch.equal(value, source.state_dict()[key]), key


def test_wrong_prefix_names_the_fix(tmp_path):
    path, _ = _a2mim_checkpoint(tmp_path)
    plain = MODELS.build(dict(type='ResNet', depth=18, init_cfg=dict(
        type='StrictPretrained', checkpoint=str(path), prefix='encoder.')))
    with pytest.raises(RuntimeError, match=r"no key .* starts with 'encoder\.'.*prefix='backbone\.'"):
        plain.init_weights()


def test_no_prefix_on_full_checkpoint_lists_missing_keys(tmp_path):
    path, _ = _a2mim_checkpoint(tmp_path)
    plain = MODELS.build(dict(type='ResNet', depth=18, init_cfg=dict(
        type='StrictPretrained', checkpoint=str(path))))
    with pytest.raises(RuntimeError) as err:
        plain.init_weights()
    message = str(err.value)
    assert 'missing (' in message and 'conv1.weight' in message
    assert "Likely fix: prefix='backbone.'" in message


def test_new_keys_must_be_declared(tmp_path):
    path, _ = _a2mim_checkpoint(tmp_path)
    cfg = dict(type='ResNet', depth=18, out_indices=(3, ), init_cfg=dict(
        type='StrictPretrained', checkpoint=str(path), prefix='backbone.'))
    deeper = MODELS.build(dict(cfg, depth=34))  # layers missing from the ResNet-18 checkpoint
    with pytest.raises(RuntimeError, match='missing'):
        deeper.init_weights()
    ok = MODELS.build(dict(cfg, init_cfg=dict(cfg['init_cfg'], allow_missing=[r'^layer4\.'])))
    torch.save({'state_dict': {k: v for k, v in torch.load(path)['state_dict'].items()
                               if not k.startswith('backbone.layer4.')}}, path)
    ok.init_weights()  # layer4 keeps its init, everything else loaded


def test_registered_and_requires_checkpoint():
    assert WEIGHT_INITIALIZERS.get('StrictPretrained') is not None
    with pytest.raises(ValueError, match='checkpoint path'):
        WEIGHT_INITIALIZERS.build(dict(type='StrictPretrained', checkpoint=''))
