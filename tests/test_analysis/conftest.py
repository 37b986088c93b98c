"""Fixtures of the interaction-analysis tests: one CPU thread (the models are tiny)."""
import pytest
import torch


@pytest.fixture(autouse=True)
def _one_thread():
    """More threads only contend with other jobs on a small CI machine (restored after)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
