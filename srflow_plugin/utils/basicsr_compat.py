"""What the plugin changes in BasicSR 1.4.2 at import time, without editing installed files.

Importing ``srflow_plugin`` (which the start-up hook does right after ``basicsr`` is imported, so this also holds
for BasicSR's own ``basicsr/train.py`` and ``basicsr/test.py``) calls :func:`install`, which

- makes BasicSR parse option files with a *safe* YAML loader (mappings still ordered): a tag such as
  ``!!python/object/apply:os.system`` is an error instead of running code;
- lets ``torch.load(weights_only=True)`` read BasicSR training states: they hold a ``collections.Counter``
  (MultiStepLR's milestones), the only non-tensor class they need;
- makes ``--launcher pytorch`` work on machines without CUDA: BasicSR divides by the number of GPUs and asks for
  NCCL; without CUDA the process group is initialised with gloo and no device is selected.

The plugin's entry point reads training states with ``utils.checkpoint.read_checkpoint`` (``weights_only=True``).
"""
import collections
import os
import warnings

import torch
import yaml

_INSTALLED = False


def safe_ordered_yaml():
    """(Loader, Dumper) like ``basicsr.utils.options.ordered_yaml``, with a loader that builds plain data only."""
    from collections import OrderedDict

    base = getattr(yaml, 'CSafeLoader', yaml.SafeLoader)

    class SafeOrderedLoader(base):
        """yaml's safe loader with mappings read as OrderedDict (as BasicSR expects)."""

    SafeOrderedLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG,
                                      lambda loader, node: OrderedDict(loader.construct_pairs(node)))
    dumper = getattr(yaml, 'CDumper', yaml.Dumper)
    dumper.add_representer(OrderedDict, lambda d, data: d.represent_dict(data.items()))
    return SafeOrderedLoader, dumper


def _init_dist_pytorch(backend='nccl', **kwargs):
    """BasicSR's ``_init_dist_pytorch`` that also works on CPU: gloo instead of NCCL, no device selection."""
    import torch.distributed as dist
    if torch.cuda.is_available() and torch.cuda.device_count() > 0:
        torch.cuda.set_device(int(os.environ['RANK']) % torch.cuda.device_count())
    else:
        if backend != 'gloo':
            warnings.warn(f'--launcher pytorch without CUDA: using the gloo backend instead of {backend}.')
        backend = 'gloo'
    dist.init_process_group(backend=backend, **kwargs)


def install():
    """Applies the changes listed in the module docstring (once)."""
    global _INSTALLED
    if _INSTALLED:
        return
    from basicsr.utils import dist_util, options
    options.ordered_yaml = safe_ordered_yaml
    dist_util._init_dist_pytorch = _init_dist_pytorch
    torch.serialization.add_safe_globals([collections.Counter])
    _INSTALLED = True
