"""The CPU shim of ``torch.cuda.set_device`` acts only on machines without a CUDA device."""
import subprocess
import sys

import pytest
import torch

from a2mim_plugin.engine import cuda_shim


@pytest.fixture
def restore_shim():
    """Leave ``torch.cuda.set_device`` as the plugin import left it."""
    before = torch.cuda.set_device
    yield
    torch.cuda.set_device = before


def test_not_installed_when_cuda_exists(monkeypatch, restore_shim):
    cuda_shim.uninstall_cpu_set_device_shim()
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: True)
    monkeypatch.setattr(torch.cuda, 'device_count', lambda: 2)
    assert cuda_shim.install_cpu_set_device_shim() is False
    assert torch.cuda.set_device is cuda_shim._ORIGINAL_SET_DEVICE
    assert not cuda_shim.shim_installed()


def test_installed_without_cuda_and_a_no_op(monkeypatch, restore_shim):
    cuda_shim.uninstall_cpu_set_device_shim()
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: False)
    calls = []
    monkeypatch.setattr(cuda_shim, '_ORIGINAL_SET_DEVICE', calls.append)
    assert cuda_shim.install_cpu_set_device_shim() is True
    assert cuda_shim.shim_installed()
    assert torch.cuda.set_device(1) is None
    assert calls == [], 'no CUDA device: the original must not be called'


def test_installed_shim_hands_over_once_a_device_is_visible(monkeypatch, restore_shim):
    cuda_shim.uninstall_cpu_set_device_shim()
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: False)
    cuda_shim.install_cpu_set_device_shim()
    calls = []
    monkeypatch.setattr(cuda_shim, '_ORIGINAL_SET_DEVICE', calls.append)
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: True)
    monkeypatch.setattr(torch.cuda, 'device_count', lambda: 1)
    torch.cuda.set_device(0)
    assert calls == [0]


@pytest.mark.skipif(cuda_shim.cuda_device_present(), reason='this machine has a CUDA device')
def test_custom_imports_install_it_before_the_runner_initialises_distributed(tmp_path):
    """``Config.fromfile`` (custom_imports) runs before ``Runner.from_cfg`` in tools/train.py,
    so the shim is in place when mmengine's ``_init_dist_*`` calls ``set_device``."""
    cfg = tmp_path / 'cfg.py'
    cfg.write_text("custom_imports = dict(imports=['a2mim_plugin'], allow_failed_imports=False)\n")
    code = f'''
import torch
from mmengine.config import Config
try:
    torch.cuda.set_device(0)
    print('bare: ok')
except Exception as e:
    print('bare:', type(e).__name__)
Config.fromfile({str(cfg)!r})
torch.cuda.set_device(0)
print('after custom_imports: ok')
'''
    proc = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert 'bare: ok' not in proc.stdout, 'without the shim set_device should fail here'
    assert 'after custom_imports: ok' in proc.stdout
