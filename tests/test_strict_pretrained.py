"""Pretrained(strict=True) loads everything or stops with the missing / unexpected keys and the
prefix fix."""
import contextlib
import logging
import re
from typing import List

import pytest
import torch
from mmengine.logging import MMLogger
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


@contextlib.contextmanager
def _warnings():
    """Collect the WARNING records of MMEngine's current logger."""
    records: List[logging.LogRecord] = []
    handler = logging.Handler(level=logging.WARNING)
    handler.emit = records.append
    logger = MMLogger.get_current_instance()
    logger.addHandler(handler)
    try:
        yield records
    finally:
        logger.removeHandler(handler)


def test_stock_behaviour_without_strict_only_warns(tmp_path):
    """No prefix and no ``strict``: nothing loads, and stock Pretrained only warns."""
    path, source = _a2mim_checkpoint(tmp_path)
    plain = _plain(path)
    with _warnings() as records:
        plain.init_weights()
    text = '\n'.join(r.getMessage() for r in records)
    assert 'do not match exactly' in text
    assert re.search(r'unexpected key in source state_dict: [^\n]*\bbackbone\.conv1\.weight', text)
    assert re.search(r'missing keys in source state_dict: [^\n]*\bconv1\.weight', text)
    convs = [k for k, v in plain.state_dict().items() if v.dim() == 4]
    assert len(convs) == 20  # ResNet-18: stem, 16 block convs, 3 downsample convs
    loaded = [k for k in convs if torch.equal(plain.state_dict()[k], source.state_dict()[k])]
    assert not loaded, f'{loaded} were loaded'


def _deeper_checkpoint(tmp_path, depth=34, extra=None):
    """A ResNet-``depth`` backbone checkpoint (``backbone.`` keys), optionally with extras."""
    deeper = MODELS.build(dict(type='ResNet', depth=depth))
    state = {f'backbone.{k}': v for k, v in deeper.state_dict().items()}
    state.update(extra or {})
    path = tmp_path / f'resnet{depth}.pth'
    torch.save({'state_dict': state}, path)
    return path, state


def test_deeper_backbone_checkpoint_is_an_error(tmp_path):
    """ResNet-34 holds every ResNet-18 tensor with the right shape plus its extra blocks:
    only the unexpected keys reveal the mix-up."""
    path, state = _deeper_checkpoint(tmp_path)
    plain = _plain(path, prefix='backbone.', strict=True)
    with pytest.raises(RuntimeError) as err:
        plain.init_weights()
    message = str(err.value)
    n_extra = sum(k.startswith(f'backbone.layer{i}.{j}.') for i, j in
                  ((1, 2), (2, 2), (2, 3), (3, 2), (3, 3), (3, 4), (3, 5), (4, 2)) for k in state)
    assert '0 missing and' in message and f'{n_extra} unexpected keys' in message
    assert f'unexpected ({n_extra}): layer1.2.conv1.weight' in message
    assert 'missing (' not in message


def test_stock_behaviour_loads_a_deeper_backbone_silently(tmp_path):
    """The failure mode strict=True exists for: without it the deeper checkpoint loads."""
    path, state = _deeper_checkpoint(tmp_path)
    plain = _plain(path, prefix='backbone.')
    with _warnings() as records:
        plain.init_weights()
    assert torch.equal(plain.layer4[1].conv2.weight, state['backbone.layer4.1.conv2.weight'])
    assert 'unexpected key in source state_dict: layer1.2.conv1.weight' in \
        '\n'.join(r.getMessage() for r in records)


def test_one_unexpected_key_is_an_error(tmp_path):
    path, _ = _deeper_checkpoint(tmp_path, depth=18,
                                 extra={'backbone.fc_extra.weight': torch.zeros(2)})
    with pytest.raises(RuntimeError, match=r'unexpected \(1\): fc_extra\.weight'):
        _plain(path, prefix='backbone.', strict=True).init_weights()


def test_mask_token_is_ignored_only_by_default(tmp_path):
    """``mask_token`` / ``mask_gamma`` are the default ``ignore_unexpected``; an empty list
    reports them, and a pattern of the user's own lets other keys stay unused."""
    path, _ = _a2mim_checkpoint(tmp_path)
    with pytest.raises(RuntimeError, match=r'unexpected \(2\): mask_token, mask_gamma'):
        _plain(path, prefix='backbone.', strict=True, ignore_unexpected=[]).init_weights()
    deeper, state = _deeper_checkpoint(tmp_path)
    plain = _plain(deeper, prefix='backbone.', strict=True,
                   ignore_unexpected=[r'^layer\d\.[2-9]\.'])
    plain.init_weights()
    assert torch.equal(plain.layer4[1].conv2.weight, state['backbone.layer4.1.conv2.weight'])


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
