import pytest
import torch


@pytest.fixture(scope='module')
def single_thread():
    """2 shared cores: for many small networks, one torch thread per test process beats two fighting ones."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
