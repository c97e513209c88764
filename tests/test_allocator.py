"""keep_freed_memory: the same tensors allocated again and again cost no fresh page faults (glibc, Linux)."""
import subprocess
import sys

import pytest

from helpers_train import subprocess_env

PATTERN = r'''
import resource, sys
import torch, torch.nn.functional as F
from srflow_plugin.utils.allocator import keep_freed_memory
torch.set_num_threads(1)
x, w = torch.rand(4, 16, 128, 128), torch.rand(16, 16, 3, 3)  # 4 MiB activations, as a decoding sub-network's

def work():
    for _ in range(10):
        F.conv2d(torch.relu(x), w, padding=1) + x

kept = keep_freed_memory() if sys.argv[1] == 'keep' else None
work()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
work()
print(kept, resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
'''


def page_faults(mode):
    out = subprocess.run([sys.executable, '-c', PATTERN, mode], env=subprocess_env(), capture_output=True, text=True,
                         check=True).stdout.split()
    return out[0], int(out[1])


@pytest.mark.skipif(not sys.platform.startswith('linux'), reason='mallopt is glibc\'s (Linux)')
def test_freed_memory_is_reused_instead_of_faulted_in_again():
    default = page_faults('default')[1]
    kept, faults = page_faults('keep')
    assert kept == 'True'
    assert default > 10000  # 10 rounds of freshly mapped 4 MiB tensors: ~1000 faults each
    assert faults < default / 10
