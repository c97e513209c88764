"""Timing and peak-memory helpers shared by the benchmark scripts (CPU and CUDA)."""
import resource
import time

import torch

# a few-second stand-in for the released layouts, for the benchmarks' dry runs (scripts/gpu_check.sh --dry-run)
TINY_CONFIG = dict(scale=4, num_feat=8, num_block=2, num_grow_ch=4, tap_blocks=(0, 1), flow_steps=2, plain_steps=1,
                   hidden_channels=8)


def presets():
    """Layout name -> SRFlowNet arguments: the release's (SRFlow_DF2K_4X, ...) and ``tiny``."""
    from srflow_plugin.archs import RELEASED_CONFIGS
    return dict(RELEASED_CONFIGS, tiny=TINY_CONFIG)


def sync(device):
    """Waits for queued CUDA work, so that wall-clock times include it."""
    if device.type == 'cuda':
        torch.cuda.synchronize(device)


def timed(fn, device, repeat):
    """Mean wall-clock seconds of ``fn()`` over ``repeat`` calls."""
    sync(device)
    start = time.perf_counter()
    for _ in range(repeat):
        fn()
    sync(device)
    return (time.perf_counter() - start) / repeat


def reset_peak_memory(device):
    """Starts a new CUDA peak-memory measurement (a process's peak RSS on the CPU cannot be reset)."""
    if device.type == 'cuda':
        torch.cuda.reset_peak_memory_stats(device)


def peak_memory_line(device):
    """'peak CUDA memory: N MiB', or the process's peak resident memory on the CPU."""
    if device.type == 'cuda':
        return f'peak CUDA memory: {torch.cuda.max_memory_allocated(device) / 2**20:.0f} MiB'
    return f'peak resident memory of this process: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB'
