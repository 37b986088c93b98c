"""Importing the plugin registers every public name into MMPretrain's registries."""
import subprocess
import sys

import pytest
from mmengine.config import Config
from mmpretrain.registry import HOOKS, MODELS

import a2mim_plugin
from a2mim_plugin import engine, models

MODEL_NAMES = sorted(models.__all__)
HOOK_NAMES = sorted(engine.__all__)


@pytest.mark.parametrize('name', MODEL_NAMES)
def test_model_names_resolve_in_mmpretrain_scope(name):
    assert MODELS.get(name) is getattr(models, name)
    assert name in MODELS.module_dict, 'registered in mmpretrain.registry.MODELS itself'


@pytest.mark.parametrize('name', HOOK_NAMES)
def test_hook_names_resolve_in_mmpretrain_scope(name):
    assert HOOKS.get(name) is getattr(engine, name)
    assert name in HOOKS.module_dict


def test_not_registered_in_mmengine_root_registry():
    from mmengine.registry import MODELS as ROOT_MODELS
    assert 'A2MIM' not in ROOT_MODELS.module_dict


def test_custom_imports_registers_in_a_fresh_process(tmp_path):
    cfg = tmp_path / 'cfg.py'
    cfg.write_text("custom_imports = dict(imports=['a2mim_plugin'], allow_failed_imports=False)\n")
    code = ('from mmengine.config import Config; from mmengine.registry import init_default_scope;'
            f'Config.fromfile({str(cfg)!r}); init_default_scope("mmpretrain");'
            'from mmpretrain.registry import MODELS, HOOKS;'
            f'assert all(MODELS.get(n) is not None for n in {MODEL_NAMES!r});'
            f'assert all(HOOKS.get(n) is not None for n in {HOOK_NAMES!r}); print("ok")')
    proc = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True)
    assert proc.returncode == 0 and proc.stdout.strip().endswith('ok'), proc.stderr[-2000:]


def test_version():
    assert a2mim_plugin.__version__ == '0.1.0'
