"""Two processes through ``mim train`` (pytorch and slurm launchers) on the CPU with gloo.

Both runs use the tiny ViT without the Fourier term, a pipeline whose crop and mask depend
on the sample only, and an unshuffled sampler. mmengine's DefaultSampler then gives rank 0
samples 0, 2, 4, ... and rank 1 samples 1, 3, 5, ..., so each step of 2 processes x batch 2
sees the same 4 images as a step of 1 process x batch 4. The head's loss is
``sum(masked errors) / (number of masked pixels + 1e-5)`` per process; every image has the
same number of masked pixels (n), so each rank's loss is ``S_r / (2n)`` and DDP's gradient
average ``(grad S_0 + grad S_1) / (2 * 2n)`` equals the gradient of ``(S_0 + S_1) / (4n)``,
the 4-image loss: the same updates, up to rounding (and the 1e-5, ~1e-9 relative).
"""
import subprocess

import pytest
import torch

from dist_utils import BIN, load_state, read_losses, tail, train_env, write_vit_config
from helpers import REPO_ROOT, run_stock_train

pytestmark = pytest.mark.slow
MAX_ITERS = 4


@pytest.fixture(scope='module')
def equivalence_configs(tmp_path_factory, photo_dataset):
    root = tmp_path_factory.mktemp('equivalence')
    kwargs = dict(max_iters=MAX_ITERS, shuffle=False, deterministic=True, drop_path=0.,
                  fft_weight=0.)
    return dict(root=root,
                single=write_vit_config(root / 'vit_det_1xb4.py', photo_dataset, batch=4,
                                        **kwargs),
                double=write_vit_config(root / 'vit_det_2xb2.py', photo_dataset, batch=2,
                                        **kwargs))


@pytest.fixture(scope='module')
def reference_1x4(equivalence_configs):
    """One process, batch 4: losses per step and final weights."""
    work_dir = equivalence_configs['root'] / 'ref_1xb4'
    env = train_env()
    with pytest.MonkeyPatch.context() as mp:
        for key, value in env.items():
            mp.setenv(key, value)
        run_stock_train(equivalence_configs['single'], work_dir)
    losses = read_losses(work_dir)
    assert list(losses) == [0] and len(losses[0]) == MAX_ITERS
    return dict(losses=[r['loss'] for r in losses[0]],
                state=load_state(work_dir / f'iter_{MAX_ITERS}.pth'))


def _mim_train(config, work_dir, launcher_args, env, timeout=420):
    cmd = [str(BIN / 'mim'), 'train', 'mmpretrain', str(config), *launcher_args,
           '--work-dir', str(work_dir)]
    proc = subprocess.run(cmd, cwd=REPO_ROOT, env=env, capture_output=True, text=True,
                          timeout=timeout)
    assert proc.returncode == 0, f'{" ".join(cmd)}\n{tail(proc.stdout)}\n{tail(proc.stderr)}'
    return proc.stdout + proc.stderr


def _assert_two_ranks_match_reference(work_dir, output, reference):
    assert 'Distributed training: True' in output and 'GPU number: 2' in output  # world size
    losses = read_losses(work_dir)
    assert sorted(losses) == [0, 1], 'both ranks trained'
    for rank in (0, 1):
        assert [r['step'] for r in losses[rank]] == list(range(1, MAX_ITERS + 1))
        assert {(r['world_size'], r['batch']) for r in losses[rank]} == {(2, 2)}
    # The 4-image loss is the mean of the two ranks' 2-image losses (same masked count).
    mean = [(a['loss'] + b['loss']) / 2 for a, b in zip(losses[0], losses[1])]
    assert mean == pytest.approx(reference['losses'], rel=1e-5, abs=1e-6)
    checkpoint = torch.load(work_dir / f'iter_{MAX_ITERS}.pth', map_location='cpu')
    assert checkpoint['meta']['iter'] == MAX_ITERS
    assert checkpoint['rng_states']['world_size'] == 2
    assert len(checkpoint['rng_states']['states']) == 2, 'RNGStateHook gathered both ranks'
    state = checkpoint['state_dict']
    assert state.keys() == reference['state'].keys()
    for name, tensor in reference['state'].items():
        torch.testing.assert_close(state[name], tensor, rtol=1e-4, atol=1e-5, msg=name)


def test_mim_pytorch_launcher_two_processes(equivalence_configs, reference_1x4):
    """``mim train ... --launcher pytorch --gpus 2`` (torch.distributed.launch, deprecated but
    still working in torch 2.14) == 1 process x batch 4."""
    work_dir = equivalence_configs['root'] / 'pytorch_2xb2'
    output = _mim_train(equivalence_configs['double'], work_dir,
                        ['--launcher', 'pytorch', '--gpus', '2'], train_env())
    assert 'torch.distributed.launch --nproc_per_node=2' in output
    _assert_two_ranks_match_reference(work_dir, output, reference_1x4)


def test_mim_slurm_launcher_on_a_real_cluster(slurm_cluster, equivalence_configs,
                                              reference_1x4):
    """``mim train ... --launcher slurm`` through srun on a one-node localhost cluster (the
    cluster fixture comes first, so an opted-out run skips before any training)."""
    work_dir = equivalence_configs['root'] / 'slurm_2xb2'
    env = train_env(SLURM_CONF=slurm_cluster['SLURM_CONF'])
    # openmim 0.3.9 with click >= 8.2 crashes when --srun-args is absent (its unset default
    # is click's Sentinel, which has no .split()), so pass one: a time limit, as on a cluster.
    output = _mim_train(equivalence_configs['double'], work_dir,
                        ['--launcher', 'slurm', '--gpus', '2', '--gpus-per-node', '2',
                         '--partition', slurm_cluster['partition'], '--cpus-per-task', '1',
                         '--srun-args', '--time=10'], env)
    assert 'srun -p a2mimci --gres=gpu:2 --ntasks=2 --ntasks-per-node=2' in output
    assert 'Distributed launcher: slurm' in output
    _assert_two_ranks_match_reference(work_dir, output, reference_1x4)
