"""The GPU check (``bench/gpu_check.sh``) in its CPU form: tiny models, the same code path, the
same tables (the switch decisions, the data pipeline against the model, AMP, peers)."""
import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / 'bench'))
import gpu_check  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parents[1]
FAMILIES = ['r50', 'convnext_s', 'vit_b', 'swin_b']


@pytest.fixture(scope='module')
def report(tmp_path_factory) -> dict:
    out = tmp_path_factory.mktemp('gpu_check')
    proc = subprocess.run(['bash', str(REPO_ROOT / 'bench' / 'gpu_check.sh'), '--device', 'cpu',
                           '--out-dir', str(out)], cwd=REPO_ROOT, capture_output=True,
                          text=True, timeout=480, env={'OMP_NUM_THREADS': '1',
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


def test_peer_table_eager(report):
    rows = report['peers']
    assert {(r['name'], r['compiled']) for r in rows} == {
        ('A2MIM', False), ('SimMIM (plugin)', False), ('SparK (MMPretrain)', False)}
    for row in rows:
        assert row['group'] == 'r50' and row['step_s'] > 0 and row['peak_mib'] is None
        assert math.isclose(row['images_per_s'], row['batch_size'] / row['step_s'])
        assert all(math.isfinite(v) for v in row['losses'].values())
    eager = next(r for r in rows if r['name'] == 'A2MIM')
    assert eager['time_vs_a2mim'] == 1.0
    # the A2MIM row has the Fourier term (weight 0.5 for R-50), its SimMIM configuration none
    simmim = next(r for r in rows if r['name'] == 'SimMIM (plugin)')
    assert eager['losses']['loss_fourier'] > 0 and 'loss_fourier' not in simmim['losses']
    assert math.isclose(eager['losses']['loss_spatial'] + eager['losses']['loss_fourier'],
                        eager['losses']['loss'], rel_tol=1e-5)
    assert '| r50 | SparK (MMPretrain) | off |' in report['markdown']


def test_switch_table_measures_every_switch_and_decides(report):
    rows = report['switches']
    assert [(r['family'], r['switch']) for r in rows] == [
        ('r50', 'default'), ('r50', 'compile'), ('r50', 'channels_last'), ('r50', 'fused_adamw'),
        ('convnext_s', 'default'), ('convnext_s', 'channels_last'),
        ('convnext_s', 'fused_adamw'), ('vit_b', 'default'), ('vit_b', 'sdpa_attention'),
        ('vit_b', 'fused_adamw'), ('swin_b', 'default'), ('swin_b', 'sdpa_attention'),
        ('swin_b', 'fused_adamw')]
    for family in FAMILIES:
        family_rows = [r for r in rows if r['family'] == family]
        base = family_rows[0]
        assert base['decision'] == '-' and base['speedup'] == 1.0
        for row in family_rows:
            assert row['compiled'] == (row['switch'] == 'compile')
            assert row['fast_paths'] == ([] if row['switch'] in ('default', 'compile')
                                         else [row['switch']])
            assert math.isclose(row['speedup'], base['step_s'] / row['step_s'])
            assert len(row['first_steps_s']) == 2
            # the same weights and batch: a switch changes speed, not what is learned
            assert math.isclose(row['losses']['loss'], base['losses']['loss'], rel_tol=1e-3)
            if row is not base:
                assert row['decision'] == gpu_check.decide(row, base)
                assert row['option'] == gpu_check.SWITCH_OPTION[row['switch']]
                assert f"| {family} | {row['switch']} | `{row['option']}` |" in \
                    report['markdown']
    turn_on = [f"{r['family']}: `{r['option']}`" for r in rows if r['decision'] == 'turn on']
    assert ('Turn on: ' + ('; '.join(turn_on) if turn_on else 'none')) in report['markdown']


def test_decision_rule():
    base = dict(step_s=1.0, peak_mib=1000., losses={'loss': 1.})
    def row(step_s, peak_mib=1000., loss=1.):
        return dict(step_s=step_s, peak_mib=peak_mib, losses={'loss': loss},
                    speedup=1.0 / step_s)
    assert gpu_check.decide(row(0.95), base) == 'turn on'
    assert gpu_check.decide(row(0.98), base) == 'keep off'  # < 3 % faster
    assert gpu_check.decide(row(0.9, peak_mib=1150.), base) == 'keep off'  # +15 % memory
    assert gpu_check.decide(row(0.9, peak_mib=1050.), base) == 'turn on'
    assert gpu_check.decide(row(0.9, loss=float('nan')), base) == 'keep off'
    assert gpu_check.decide(row(0.9, peak_mib=None), dict(base, peak_mib=None)) == 'turn on'


def test_data_pipeline_against_the_model(report):
    data = report['data']
    shipped = [w for w in data['per_worker'] if w['shipped']]
    assert len(shipped) == 1 and (shipped[0]['decode'], shipped[0]['resize']) == ('cv2',
                                                                                   'pillow')
    assert {(w['decode'], w['resize']) for w in data['per_worker']} >= {
        ('cv2', 'pillow'), ('cv2', 'cv2'), ('pillow', 'pillow'), ('pillow', 'cv2')}
    assert all(w['images_per_s'] > 0 for w in data['per_worker'])
    assert [(d['workers'], d['pin_memory']) for d in data['dataloader']] == [(2, False),
                                                                             (2, True)]
    rate = shipped[0]['images_per_s']
    for need in data['needs']:
        fastest = max(r['images_per_s'] for r in report['switches']
                      if r['family'] == need['family'])
        assert need['model_images_per_s'] == fastest
        assert math.isclose(need['workers_needed'], fastest / rate)
        assert need['configured_workers'] == 8  # the pre-training dataset bases
    assert [n['family'] for n in data['needs']] == list(FAMILIES)


def test_mixmim_peer_runs_at_the_swin_size():
    """MixMIM (MixMAE) in the swin_b peer group: its config at 192 px gets windows that divide
    each stage's grid and a 6x6 decoder grid, and steps (tiny widths, same code path)."""
    import torch
    import peers
    peers.setup()
    name, config = peers.GROUPS['swin_b'][-1]
    assert name == 'MixMIM (MMPretrain)'
    assert peers.mixmim_windows(224, [14, 14, 14, 7]) == [14, 14, 14, 7]
    assert peers.mixmim_windows(192, [14, 14, 14, 7]) == [12, 12, 12, 6]
    assert peers.mixmim_windows(96, [14, 14, 14, 7]) == [12, 12, 6, 3]
    cfg = peers.load_config(config, 192)
    assert cfg.model.backbone.window_size == [12, 12, 12, 6]
    assert cfg.model.backbone.img_size == 192 and cfg.model.neck.num_patches == 36
    assert cfg.model.backbone.mask_ratio == 0.5
    tiny = dict(backbone=dict(arch=dict(embed_dims=16, depths=[1, 1, 1, 1],
                                        num_heads=[1, 1, 2, 2])),
                neck=dict(embed_dim=128, decoder_embed_dim=32, decoder_depth=1,
                          decoder_num_heads=2))
    entry = peers.build_entry('swin_b', name, config, img_size=192, batch_size=2, amp='none',
                              device=torch.device('cpu'), compiled=False,
                              compile_backend='eager', override=tiny)
    rows = peers.step_alternately([entry], device=torch.device('cpu'), steps=1, warmup=1,
                                  log=lambda _: None)
    assert rows[0]['name'] == name and rows[0]['img_size'] == 192
    assert math.isfinite(rows[0]['losses']['loss']) and rows[0]['losses']['loss'] > 0
