"""The weights-only allow-list admits mmengine checkpoints and nothing more."""
import os
import pickle

import numpy as np
import pytest
import torch
from mmengine.logging import HistoryBuffer


class _Payload:
    def __reduce__(self):
        return (os.system, ('echo unsafe',))


def test_history_buffer_and_numpy_round_trip(tmp_path):
    buffer = HistoryBuffer()
    buffer.update(2.0)
    buffer.update(4.0)
    obj = {'buf': buffer, 'eta': np.float64(1.5), 'arr': np.arange(3, dtype=np.int64),
           'f32': np.float32(2.5)}
    torch.save(obj, tmp_path / 'ok.pth')
    loaded = torch.load(tmp_path / 'ok.pth', weights_only=True)
    assert loaded['buf'].mean() == 3.0 and loaded['buf'].current() == 4.0
    assert loaded['eta'] == 1.5 and loaded['f32'] == np.float32(2.5)
    np.testing.assert_array_equal(loaded['arr'], np.arange(3))


def test_arbitrary_globals_still_refused(tmp_path):
    torch.save({'x': _Payload()}, tmp_path / 'bad.pth')
    with pytest.raises(pickle.UnpicklingError, match='posix.system|not an allowed global'):
        torch.load(tmp_path / 'bad.pth', weights_only=True)


def test_getattr_stand_in_only_reaches_history_buffer_statistics():
    from a2mim_plugin.utils.checkpoint_safety import _history_buffer_getattr
    assert _history_buffer_getattr(HistoryBuffer, 'mean') is HistoryBuffer.mean
    with pytest.raises(pickle.UnpicklingError, match='not allowed'):
        _history_buffer_getattr(HistoryBuffer, '__init__')
    with pytest.raises(pickle.UnpicklingError, match='not allowed'):
        _history_buffer_getattr(os, 'system')
