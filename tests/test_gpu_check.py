"""The GPU check (``bench/gpu_check.sh``) in its CPU form: tiny models, the same code path."""
import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
FAMILIES = {'r50', 'convnext_s', 'vit_b', 'swin_b'}


@pytest.fixture(scope='module')
def report(tmp_path_factory) -> dict:
    out = tmp_path_factory.mktemp('gpu_check')
    proc = subprocess.run(['bash', str(REPO_ROOT / 'bench' / 'gpu_check.sh'), '--device', 'cpu',
                           '--out-dir', str(out)], cwd=REPO_ROOT, capture_output=True,
                          text=True, timeout=240, env={'OMP_NUM_THREADS': '1',
                                                       'PATH': '/usr/bin:/bin',
                                                       'PYTHON': sys.executable})
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    data = json.loads((out / 'gpu_check.json').read_text())
    data['markdown'] = (out / 'gpu_check.md').read_text()
    return data


def test_amp_steps_of_every_family_are_finite(report):
    assert report['device'] == 'cpu' and report['skipped'] == []
    runs = {(r['family'], r['amp']): r for r in report['amp']}
    assert set(runs) == {(f, a) for f in FAMILIES for a in ('fp16', 'bf16')}
    for (family, amp), run in runs.items():
        assert run['wrapper'] == 'AmpOptimWrapper' and run['finite'] is True
        assert len(run['losses']) == run['steps'] == 3
        for losses in run['losses']:
            assert all(math.isfinite(v) for v in losses.values()), (family, amp, losses)
            assert 0 < losses['loss_spatial'] < 10
            # the head's terms sum to the total
            assert math.isclose(sum(v for k, v in losses.items() if k != 'loss'),
                                losses['loss'], rel_tol=1e-5)
        assert math.isfinite(run['fourier']) and run['fourier'] > 0
        # ConvNeXt-S has no Fourier term in its official row: it is probed under autocast
        if family == 'convnext_s':
            assert run['fourier_source'] == 'probe'
            assert run['pred_dtype'] == {'fp16': 'torch.float16', 'bf16': 'torch.bfloat16'}[amp]
        else:
            assert run['fourier_source'] == 'head'
            assert run['fourier'] == run['losses'][-1]['loss_fourier']


def test_peer_table_eager_and_compiled(report):
    rows = report['peers']
    assert {(r['name'], r['compiled']) for r in rows} == {
        ('A2MIM', False), ('SimMIM (plugin)', False), ('SparK (MMPretrain)', False),
        ('A2MIM', True)}
    for row in rows:
        assert row['group'] == 'r50' and row['step_s'] > 0 and row['peak_mib'] is None
        assert math.isclose(row['images_per_s'], row['batch_size'] / row['step_s'])
        assert all(math.isfinite(v) for v in row['losses'].values())
    eager = next(r for r in rows if r['name'] == 'A2MIM' and not r['compiled'])
    assert eager['time_vs_a2mim'] == 1.0
    compiled = next(r for r in rows if r['compiled'])
    assert math.isclose(compiled['time_vs_a2mim_eager'], compiled['step_s'] / eager['step_s'])
    # the A2MIM row has the Fourier term (weight 0.5 for R-50), its SimMIM configuration none
    simmim = next(r for r in rows if r['name'] == 'SimMIM (plugin)')
    assert eager['losses']['loss_fourier'] > 0 and 'loss_fourier' not in simmim['losses']
    assert math.isclose(eager['losses']['loss_spatial'] + eager['losses']['loss_fourier'],
                        eager['losses']['loss'], rel_tol=1e-5)
    assert '| r50 | SparK (MMPretrain) | off |' in report['markdown']
