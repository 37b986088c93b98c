"""Fixtures of the model tests."""
import pytest
import torch


@pytest.fixture(autouse=True)
def single_intra_op_thread():
    """Run the tiny models of this folder on one intra-op thread.

    Their ops are far too small to gain from a second thread, and on a shared 2-core machine a
    descheduled worker thread stalls every op (measured: the backbone tests ran 10x slower with
    2 threads while another process was busy). The previous setting is restored afterwards.
    """
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)
