"""Two processes (torchrun, gloo) give the single-process k-NN result: each rank extracts its
shard (uneven shards here), the bank is gathered in order, the predictions are gathered."""
import os
import socket
import subprocess
import sys
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
REPO_ROOT = HERE.parents[1]
WORKER = HERE / 'knn_dist_worker.py'


def _env() -> dict:
    env = {k: v for k, v in os.environ.items() if k != 'TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD'}
    env['PYTHONPATH'] = os.pathsep.join([str(REPO_ROOT)] + [p for p in [env.get('PYTHONPATH')]
                                                            if p])
    env['OMP_NUM_THREADS'] = '1'
    return env


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def test_two_processes_equal_one(tmp_path, labelled_photos):
    one, two = tmp_path / 'one.pth', tmp_path / 'two.pth'
    runs = [[sys.executable, str(WORKER), str(labelled_photos), str(one)],
            [str(Path(sys.executable).parent / 'torchrun'), '--nproc_per_node=2',
             f'--master_port={_free_port()}', str(WORKER), str(labelled_photos), str(two)]]
    for cmd in runs:
        proc = subprocess.run(cmd, cwd=REPO_ROOT, env=_env(), capture_output=True, text=True,
                              timeout=300)
        assert proc.returncode == 0, f'{" ".join(cmd)}\n{proc.stdout[-3000:]}\n' \
                                     f'{proc.stderr[-5000:]}'
    single, multi = torch.load(one), torch.load(two)
    assert (single['world_size'], multi['world_size']) == (1, 2)
    assert (multi['num_bank'], multi['num_queries']) == (single['num_bank'],
                                                          single['num_queries']) == (41, 25)
    # The gathered bank: same rows in the same order (other batch splits: float tolerance).
    assert torch.equal(multi['bank_labels'], single['bank_labels'])
    torch.testing.assert_close(multi['bank'], single['bank'], rtol=0, atol=1e-5)
    for k in (3, 20):
        assert torch.equal(multi['predictions'][k], single['predictions'][k]), k
    assert multi['top1'] == single['top1'] and multi['top5'] == single['top5']
