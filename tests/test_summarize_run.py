"""``tools/summarize_run.py``, the summary that ``make demo`` prints after training.

One case reads what MMEngine's Runner really writes (a tiny in-process run of a toy model with
the local visualizer backend); the others use hand-made work directories whose numbers are
known, and the error exits.
"""
import json
import re
import subprocess
import sys
from pathlib import Path
from typing import List

import torch
from mmengine.model import BaseModel
from mmengine.runner import Runner
from torch.utils.data import Dataset

from helpers import REPO_ROOT

TOOL = REPO_ROOT / 'tools' / 'summarize_run.py'


def _summarize(work_dir: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(TOOL), str(work_dir)], capture_output=True,
                          text=True, timeout=60)


def _fake_run(work_dir: Path, losses: List[float], stamp: str = '20260101_000000') -> Path:
    """A work dir shaped like MMEngine's: ``<stamp>/vis_data/scalars.json`` and the log."""
    run = work_dir / stamp
    (run / 'vis_data' / 'vis_image').mkdir(parents=True)
    lines = [json.dumps(dict(lr=1e-3, loss=v, step=10 * (i + 1))) for i, v in enumerate(losses)]
    lines.insert(1, json.dumps(dict(accuracy=1.0, step=15)))  # a record without a loss
    (run / 'vis_data' / 'scalars.json').write_text('\n'.join(lines) + '\n')
    (run / f'{stamp}.log').write_text('log\n')
    return run


def test_summary_numbers(tmp_path):
    """20 logs: the trend compares the means of the first and last 2 (a tenth)."""
    losses = [1.0 - 0.04 * i for i in range(20)]  # 1.00, 0.96, ..., 0.24
    run = _fake_run(tmp_path, losses)
    for name in ('epoch_10.pth', 'epoch_9.pth', 'epoch_20.pth'):
        (tmp_path / name).write_bytes(b'')
    for step in (630, 210, 420):
        (run / 'vis_data' / 'vis_image' / f'reconstruction_{step}.png').write_bytes(b'')
    proc = _summarize(tmp_path)
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout.splitlines()
    assert out[0] == f'log:          {run / (run.name + ".log")}'
    assert out[1] == 'loss:         first 1.0000 (step 10), last 0.2400 (step 200)'
    head, tail = (1.0 + 0.96) / 2, (0.28 + 0.24) / 2
    assert out[2] == (f'loss trend:   mean of first 2 logs {head:.4f} -> last 2 logs '
                      f'{tail:.4f} ({100 * (tail - head) / head:+.1f}%)')
    assert out[2].endswith('(-73.5%)')
    # checkpoints and pictures in step order, not in string order
    assert out[3:6] == [f'checkpoint:   {tmp_path / n}'
                        for n in ('epoch_9.pth', 'epoch_10.pth', 'epoch_20.pth')]
    assert out[6:] == [f'picture:      {run / "vis_data" / "vis_image" / f"reconstruction_{s}.png"}'
                       for s in (210, 420, 630)]


def test_last_run_of_a_resumed_work_dir_is_summarised(tmp_path):
    _fake_run(tmp_path, [0.9, 0.8], stamp='20260101_000000')
    _fake_run(tmp_path, [0.5, 0.4], stamp='20260102_000000')
    proc = _summarize(tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert 'first 0.5000 (step 10), last 0.4000 (step 20)' in proc.stdout
    assert '20260102_000000.log' in proc.stdout


def test_errors_exit_non_zero_with_the_reason(tmp_path):
    proc = _summarize(tmp_path)
    assert proc.returncode == 1 and proc.stdout == ''
    assert f'no run logs (*/vis_data/scalars.json) under {tmp_path}' in proc.stderr
    run = tmp_path / 'stamp' / 'vis_data'
    run.mkdir(parents=True)
    (run / 'scalars.json').write_text(json.dumps(dict(accuracy=1.0, step=1)) + '\n')
    proc = _summarize(tmp_path)
    assert proc.returncode == 1 and 'holds no loss records' in proc.stderr


class _Dataset(Dataset):
    def __len__(self):
        return 4

    def __getitem__(self, index):
        return dict(inputs=torch.full((2,), float(index)))


class _Model(BaseModel):
    def __init__(self):
        super().__init__()
        self.linear = torch.nn.Linear(2, 1)

    def forward(self, inputs, data_samples=None, mode='tensor'):
        return dict(loss=self.linear(torch.stack(inputs)).pow(2).mean())


def test_reads_what_the_runner_writes(tmp_path):
    runner = Runner(
        model=_Model(), work_dir=str(tmp_path),
        train_dataloader=dict(batch_size=2, num_workers=0,
                              sampler=dict(type='DefaultSampler', shuffle=False),
                              dataset=_Dataset()),
        optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.01)),
        train_cfg=dict(by_epoch=False, max_iters=4),
        default_hooks=dict(logger=dict(type='LoggerHook', interval=1),
                           checkpoint=dict(type='AtomicCheckpointHook', interval=2,
                                           by_epoch=False)),
        visualizer=dict(type='Visualizer', vis_backends=[dict(type='LocalVisBackend')]),
        log_processor=dict(by_epoch=False), randomness=dict(seed=0),
        default_scope='mmpretrain', log_level='WARNING')
    runner.train()
    records = [json.loads(line) for line in
               next(tmp_path.glob('*/vis_data/scalars.json')).read_text().splitlines()]
    losses = [(r['step'], r['loss']) for r in records if 'loss' in r]
    assert [s for s, _ in losses] == [1, 2, 3, 4]

    proc = _summarize(tmp_path)
    assert proc.returncode == 0, proc.stderr
    log = re.search(r'^log: +(\S+)$', proc.stdout, re.M).group(1)
    assert Path(log).is_file()
    assert (f'first {losses[0][1]:.4f} (step 1), last {losses[-1][1]:.4f} (step 4)'
            in proc.stdout)
    assert re.findall(r'^checkpoint: +(\S+)$', proc.stdout, re.M) == [
        str(tmp_path / 'iter_2.pth'), str(tmp_path / 'iter_4.pth')]
