"""The devices the device-sensitive tests run on, and the tolerances of what may differ between them.

``DEVICES`` is ``cpu`` and, where ``torch.cuda.is_available()``, ``cuda``; the ``device`` fixture of conftest.py
parametrises a test over them (on a machine without CUDA the tests run on the CPU as before). On CUDA the fixture
turns TF32 off for the test: float32 is then float32 on both devices (TF32, cuDNN's default for convolutions on
Ampere and later GPUs, keeps 10 bits of mantissa; scripts/gpu_check.sh measures training with the defaults).
"""
import contextlib
import copy

import torch

DEVICES = ['cpu'] + (['cuda'] if torch.cuda.is_available() else [])

# float32 results of one computation on another device (other kernels, other orders of summation): a sample of
# a tiny network in [0, 1] pixels, and its PNG (one uint8 level where a value lies near a rounding boundary)
CROSS_DEVICE_ATOL = 1e-4
CROSS_DEVICE_PNG_LEVELS = 1


def num_gpu(device):
    """The ``num_gpu`` option that puts a BasicSR model on ``device``."""
    return 1 if torch.device(device).type == 'cuda' else 0


def to_device(device, net, *tensors):
    """``net`` (a copy, unless the device is the CPU, so that a cached CPU network stays where it is) and
    ``tensors`` on ``device``."""
    device = torch.device(device)
    if device.type != 'cpu':
        net = copy.deepcopy(net).to(device)
    return (net, ) + tuple(t.to(device) for t in tensors)


@contextlib.contextmanager
def full_float32(device):
    """float32 matrix products and convolutions without TF32 on CUDA, for the test's duration (nothing on the CPU)."""
    if torch.device(device).type != 'cuda':
        yield
        return
    saved = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved
