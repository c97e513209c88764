"""Keeping freed CPU memory for reuse, so that the same large tensors coming and going do not cost page faults.

glibc's malloc serves every block above its mmap threshold (128 KiB at first, adjusted up to 32 MiB) with a fresh
``mmap`` and gives the memory back when it is freed; the heap is trimmed whenever its free top exceeds the trim
threshold. Sampling allocates and frees tensors of the same few sizes hundreds of times per image, so on the CPU
most of its time went into page faults of freshly mapped memory (a batch of 10 samples of the released x4 network
decoded 2x faster with the memory kept; ``scripts/benchmark_sampling.py`` prints both). :func:`keep_freed_memory`
raises both thresholds, so freed blocks stay in the process and are reused; the process's resident memory then
stays near its peak instead of following the live tensors, as with CUDA's caching allocator.

It changes the whole process's allocator, so the library never calls it by itself: the plugin's console commands
(``srflow-sample``, ``srflow-latent``, ``srflow-test``, ``srflow-train``) do, and code that samples in a loop can.
Elsewhere than glibc (macOS, Windows, musl) it does nothing and returns False.
"""
import ctypes
import sys

M_TRIM_THRESHOLD = -1  # glibc's mallopt parameters (malloc.h)
M_MMAP_THRESHOLD = -3
KEEP_BYTES = 1 << 30  # blocks up to 1 GiB come from the heap; up to 1 GiB of free heap top is kept


def _mallopt():
    if not sys.platform.startswith('linux'):
        return None
    try:
        return ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):  # not glibc
        return None


def keep_freed_memory():
    """Makes glibc keep freed memory for reuse (see the module docstring). Returns True when it did."""
    mallopt = _mallopt()
    if mallopt is None:
        return False
    return bool(mallopt(M_MMAP_THRESHOLD, KEEP_BYTES)) and bool(mallopt(M_TRIM_THRESHOLD, KEEP_BYTES))
