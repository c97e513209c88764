"""keep_freed_memory: the same tensors allocated again and again cost no fresh page faults (glibc, Linux)."""
import subprocess
import sys

import pytest

from helpers.train import subprocess_env

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


MAPPED = r'''
import ctypes, sys
import torch
from srflow_plugin.utils.allocator import keep_freed_memory


class MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in ('arena', 'ordblks', 'smblks', 'hblks', 'hblkhd', 'usmblks',
                                                     'fsmblks', 'uordblks', 'fordblks', 'keepcost')]


libc = ctypes.CDLL(None)
libc.mallinfo2.restype = MallInfo2
if sys.argv[1] == 'keep':
    keep_freed_memory()
before = libc.mallinfo2().hblkhd
tensor = torch.empty(16 << 20)  # 64 MiB
print((libc.mallinfo2().hblkhd - before) >> 20)
'''


def run(code, mode):
    return subprocess.run([sys.executable, '-c', code, mode], env=subprocess_env(), capture_output=True, text=True,
                          check=True).stdout.split()


def page_faults(mode):
    out = run(PATTERN, mode)
    return out[0], int(out[1])


@pytest.mark.skipif(not sys.platform.startswith('linux'), reason='mallopt is glibc\'s (Linux)')
def test_freed_memory_is_reused_instead_of_faulted_in_again():
    default = page_faults('default')[1]
    kept, faults = page_faults('keep')
    assert kept == 'True'
    assert default > 10000  # 10 rounds of freshly mapped 4 MiB tensors: ~1000 faults each
    assert faults < default / 10


@pytest.mark.skipif(not sys.platform.startswith('linux'), reason='mallopt and mallinfo2 are glibc\'s (Linux)')
def test_a_large_block_comes_from_the_reused_heap_instead_of_a_fresh_mapping():
    # glibc's own count of memory in mmapped blocks: 64 MiB more by default, unchanged once freed memory is kept
    assert int(run(MAPPED, 'default')[0]) == 64
    assert int(run(MAPPED, 'keep')[0]) == 0
