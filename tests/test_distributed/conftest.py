"""Fixtures of the distributed tests: a real one-node Slurm cluster on localhost.

Run as root (or in CI), the ``slurm_cluster`` fixture installs Debian's ``slurm-wlm`` and
``munge`` with apt-get when they are missing (``tools/slurm_local.sh install``). A developer
who does not want that sets ``A2MIM_SKIP_SLURM=1``: the Slurm test is then reported as skipped,
and the end of the session says so in a warning line; under ``CI`` the variable is an error.
"""
import os
import socket
import subprocess
from pathlib import Path
from typing import List

import pytest

from dist_utils import REPO_ROOT

SLURM_SCRIPT = REPO_ROOT / 'tools' / 'slurm_local.sh'
IN_CI = os.environ.get('CI', '').lower() in ('1', 'true', 'yes')
SKIP_VARIABLE = 'A2MIM_SKIP_SLURM'
NOT_RUN = pytest.StashKey[List[str]]()


def _opted_out() -> bool:
    return os.environ.get(SKIP_VARIABLE, '').lower() in ('1', 'true', 'yes')


def _not_run(config: pytest.Config, reason: str) -> None:
    """Skip the Slurm test, and remember why for the end-of-session summary."""
    config.stash.setdefault(NOT_RUN, []).append(reason)
    pytest.skip(reason)


def pytest_terminal_summary(terminalreporter, exitstatus, config) -> None:
    """A skipped Slurm test is easy to miss in ``-q`` output: say it at the end."""
    for reason in config.stash.get(NOT_RUN, []):
        terminalreporter.write_line(f'WARNING: the Slurm launcher test did not run: {reason}',
                                    yellow=True, bold=True)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def _script(action: str, env: dict, timeout: int) -> subprocess.CompletedProcess:
    return subprocess.run(['bash', str(SLURM_SCRIPT), action], env=env, capture_output=True,
                          text=True, timeout=timeout)


@pytest.fixture(scope='session')
def slurm_cluster(request, tmp_path_factory):
    """Install (if needed) and start slurmctld + slurmd + munged; always stop them afterwards.

    Yields the environment that clients (srun, mim) need: ``SLURM_CONF`` and the partition.
    Outside CI the test is skipped (and the skip repeated at the end of the session) without
    root or with ``A2MIM_SKIP_SLURM=1``; in CI the variable is an error, and in CI or as root
    a cluster that cannot be installed or started fails the test with the script's output.
    """
    if _opted_out():
        if IN_CI:
            pytest.fail(f'{SKIP_VARIABLE} is set, but CI must run the Slurm launcher test; '
                        f'unset {SKIP_VARIABLE} (it is meant for developer machines).')
        _not_run(request.config, f'{SKIP_VARIABLE} is set (no apt-get install of slurm-wlm '
                 f'and munge); unset it to run the test')
    if os.geteuid() != 0 and not IN_CI:
        _not_run(request.config, 'a local Slurm cluster needs root (apt-get, slurmd); '
                 'CI runs it')
    base = Path(tmp_path_factory.mktemp('slurm'))
    env = dict(os.environ, SLURM_LOCAL_DIR=str(base), SLURM_LOCAL_PARTITION='a2mimci',
               SLURM_LOCAL_CPUS='4', SLURM_LOCAL_GPUS='2',
               SLURM_LOCAL_CTLD_PORT=str(_free_port()), SLURM_LOCAL_SLURMD_PORT=str(_free_port()),
               SLURM_LOCAL_TIMEOUT='60', SLURM_LOCAL_APT_TIMEOUT='240')
    try:
        install = _script('install', env, timeout=560)
    except subprocess.TimeoutExpired:
        pytest.fail('tools/slurm_local.sh install timed out (apt-get slurm-wlm munge)')
    if install.returncode != 0:
        pytest.fail('could not install slurm-wlm and munge (needed by the Slurm launcher '
                    f'test):\n{install.stdout[-2000:]}\n{install.stderr[-3000:]}')
    try:
        try:
            start = _script('start', env, timeout=180)
        except subprocess.TimeoutExpired:
            pytest.fail('tools/slurm_local.sh start timed out')
        if start.returncode != 0:
            pytest.fail(f'the local Slurm cluster did not start:\n{start.stderr[-4000:]}')
        yield dict(SLURM_CONF=str(base / 'slurm.conf'), partition='a2mimci')
    finally:
        stop = _script('stop', env, timeout=120)
        assert stop.returncode == 0, f'slurm_local.sh stop failed:\n{stop.stderr[-3000:]}'
