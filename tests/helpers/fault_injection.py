"""``python -m srflow_plugin.train`` with faults injected, for tests/test_fault_injection.py.

    python -m fault_injection -opt X.yml [--auto_resume]          # with SRFLOW_FAULTS=nan_batch=3,disk_full=6

``SRFLOW_FAULTS`` is a comma-separated list of ``fault=iteration``:

- ``nan_batch=N``: one NaN pixel in the GT batch of iteration N (as a corrupt image would give);
- ``disk_full=N``: every file written at iteration N's save fails after its first bytes with ENOSPC, as on a
  full disk;
- ``kill=N``: the process sends itself SIGKILL halfway through writing iteration N's first checkpoint file (a
  kill -9 in the middle of a save).

Everything else is the plugin's real training entry point. On a machine with CUDA, kernels are made deterministic
(cuDNN's benchmarking, which BasicSR's pipeline turns on, off again), so that two runs can be compared bit for bit.
"""
import errno
import os
import re
import signal
import sys

import torch

from srflow_plugin import train
from srflow_plugin.models.srflow_model import SRFlowModel


def _faults():
    faults = {}
    for item in filter(None, os.environ.get('SRFLOW_FAULTS', '').split(',')):
        name, iteration = item.split('=')
        faults[name.strip()] = int(iteration)
    return faults


def _iteration_of(path):
    """The iteration a checkpoint or training-state path belongs to (net_g_6.pth.tmp123 -> 6), or None."""
    match = re.search(r'(?:net_g_|^)(\d+)\.(?:pth|state)\.tmp\d+$', os.path.basename(str(path)))
    return int(match.group(1)) if match else None


def install(faults):
    original_optimize = SRFlowModel.optimize_parameters
    original_save = torch.save

    def optimize_parameters(self, current_iter):
        if current_iter == faults.get('nan_batch'):
            self.gt[0, 0, 0, 0] = float('nan')
        return original_optimize(self, current_iter)

    def save(obj, f, *args, **kwargs):
        iteration = _iteration_of(f)
        if iteration is not None and iteration in (faults.get('disk_full'), faults.get('kill')):
            with open(f, 'wb') as out:  # the first bytes reach the disk, then the write fails or the process dies
                out.write(b'PK\x03\x04' + b'\0' * 60)
                out.flush()
                os.fsync(out.fileno())
            if iteration == faults.get('kill'):
                os.kill(os.getpid(), signal.SIGKILL)
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(f))
        return original_save(obj, f, *args, **kwargs)

    SRFlowModel.optimize_parameters = optimize_parameters
    torch.save = save


def deterministic_cuda():
    os.environ.setdefault('CUBLAS_WORKSPACE_CONFIG', ':4096:8')
    torch.use_deterministic_algorithms(True, warn_only=True)
    original_init = SRFlowModel.__init__

    def init(self, opt):
        torch.backends.cudnn.benchmark = False  # set by basicsr.train.train_pipeline before the model is built
        original_init(self, opt)

    SRFlowModel.__init__ = init


if __name__ == '__main__':
    install(_faults())
    if torch.cuda.is_available():
        deterministic_cuda()
    train.main(sys.argv[1:])
