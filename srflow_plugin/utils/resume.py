"""Exact resume of BasicSR's training loop: the data position within the epoch and the random number generators.

BasicSR 1.4.2 resumes at the saved iteration but restarts the saved epoch from its first batch (batches already
trained on are seen again, for up to a whole epoch) and re-seeds every generator as at the start of the run, so
a resumed run does not continue the way the interrupted one would have. :class:`TrainingPosition` records, in each
training state, how many samples of the current epoch were consumed and the state of Python's, NumPy's and
torch's generators; on resume the epoch's sampler skips the consumed samples and the generators are restored
right after the data loader is re-created (which draws a seed of its own). With ``num_worker_per_gpu: 0`` and the
default CPU prefetcher, a killed and resumed run then gives exactly the weights of an uninterrupted one. With
loader workers the batches are still the same, but the workers' random augmentations restart; under DDP the data
position is restored and each rank keeps its own freshly seeded generators (the state holds rank 0's only).

The plugin's training entry point (``srflow_plugin.train``) installs this into BasicSR's loop; BasicSR's own
``basicsr/train.py`` keeps its behaviour (states saved by it hold no position and resume as BasicSR does).
"""
import itertools
import random

import numpy as np
import torch
from basicsr.data.data_sampler import EnlargedSampler
from basicsr.data.prefetch_dataloader import CPUPrefetcher, CUDAPrefetcher


def rng_state():
    """Python's, NumPy's and torch's (CPU and, when initialised, CUDA) generator states, as plain data and tensors
    (loadable with ``torch.load(weights_only=True)``)."""
    name, keys, pos, has_gauss, cached = np.random.get_state()
    state = {'python': random.getstate(), 'numpy': (name, torch.from_numpy(keys.astype(np.int64)), int(pos),
                                                    int(has_gauss), float(cached)),
             'torch': torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state['cuda'] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state):
    """Restores :func:`rng_state`'s generators."""
    version, internal, gauss = state['python']
    random.setstate((version, tuple(internal), gauss))
    name, keys, pos, has_gauss, cached = state['numpy']
    np.random.set_state((name, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(state['torch'])
    if 'cuda' in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state['cuda'])


class TrainingPosition:
    """Where one training loop is: samples of the current epoch consumed, and what to restore on resume.

    The sampler and prefetchers below report to it; the model writes :meth:`state_dict` into its training states
    and hands a resumed state to :meth:`resume`.
    """

    def __init__(self, world_size=1):
        self.world_size = world_size
        self.epoch_samples = 0
        self._skip = 0  # samples the next epoch's sampler leaves out
        self._armed_skip = 0  # ... once that epoch's loader is being created
        self._rng = None  # generator states restored after the next loader reset

    def state_dict(self):
        state = {'epoch_samples': self.epoch_samples}
        if self.world_size == 1:
            state['rng'] = rng_state()
        return state

    def resume(self, state):
        """Continues from a training state's ``position`` (None: a state without one, resumed as BasicSR does)."""
        if not state:
            return
        self._skip = int(state['epoch_samples'])
        self._rng = state.get('rng') if self.world_size == 1 else None

    def reset_begins(self):
        """Called just before the data loader of a new epoch is created: its sampler leaves out what a resumed
        epoch already used, and those samples count as consumed."""
        self.epoch_samples, self._armed_skip, self._skip = self._skip, self._skip, 0

    def take_skip(self):
        skip, self._armed_skip = self._armed_skip, 0
        return skip

    def reset_done(self):
        """Called right after that loader was created (creating it draws a seed from torch's generator)."""
        if self._rng is not None:
            set_rng_state(self._rng)
            self._rng = None

    def consumed(self, batch, batch_size):
        if batch is not None:
            self.epoch_samples += batch_size


class ResumableSampler(EnlargedSampler):
    """BasicSR's EnlargedSampler (same order per epoch) that leaves out the samples a resumed epoch already used."""

    def __init__(self, dataset, num_replicas, rank, ratio=1, position=None):
        super().__init__(dataset, num_replicas, rank, ratio)
        self.position = position

    def __iter__(self):
        skip = self.position.take_skip() if self.position is not None else 0
        return itertools.islice(super().__iter__(), skip, None)


def _counting(prefetcher):
    """A BasicSR prefetcher class whose batches are counted by a :class:`TrainingPosition`."""

    class Counting(prefetcher):
        def __init__(self, *args, position, **kwargs):
            self.position = position
            super().__init__(*args, **kwargs)

        def next(self):
            batch = super().next()
            self.position.consumed(batch, self.ori_loader.batch_size)
            return batch

        def reset(self):
            self.position.reset_begins()
            super().reset()
            self.position.reset_done()

    Counting.__name__ = Counting.__qualname__ = f'Counting{prefetcher.__name__}'
    return Counting


CountingCPUPrefetcher = _counting(CPUPrefetcher)
CountingCUDAPrefetcher = _counting(CUDAPrefetcher)
