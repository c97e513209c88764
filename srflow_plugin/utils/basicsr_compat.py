"""What the plugin changes in BasicSR 1.4.2 at import time, without editing installed files.

Importing ``srflow_plugin`` (which the start-up hook does right after ``basicsr`` is imported, so this also holds
for BasicSR's own ``basicsr/train.py`` and ``basicsr/test.py``) calls :func:`install`, which

- makes BasicSR parse option files with the plugin's *safe* YAML loader (:mod:`srflow_plugin.utils.option_file`;
  mappings still ordered): a tag such as ``!!python/object/apply:os.system`` is an error instead of running code,
  and so are duplicate keys, alias bombs and documents that are not a mapping;
- makes ``BaseModel.load_network`` (``path.pretrain_network_g`` of every BasicSR model) read with
  ``torch.load(weights_only=True)`` on every supported torch, also under ``TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD=1``, and
  refuse non-finite weights (``utils.checkpoint.load_network_weights_only``);
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
    """(Loader, Dumper) like ``basicsr.utils.options.ordered_yaml``, with the plugin's option loader
    (:class:`~srflow_plugin.utils.option_file.OptionLoader`: plain data only, ordered mappings; duplicate keys, alias
    bombs and documents that are not a mapping are refused)."""
    from collections import OrderedDict

    from srflow_plugin.utils.option_file import OptionLoader

    dumper = getattr(yaml, 'CDumper', yaml.Dumper)
    dumper.add_representer(OrderedDict, lambda d, data: d.represent_dict(data.items()))
    return OptionLoader, dumper


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
    from basicsr.models.base_model import BaseModel
    from basicsr.utils import dist_util, options

    from srflow_plugin.utils.checkpoint import load_network_weights_only
    options.ordered_yaml = safe_ordered_yaml
    BaseModel.load_network = load_network_weights_only
    dist_util._init_dist_pytorch = _init_dist_pytorch
    torch.serialization.add_safe_globals([collections.Counter])
    _INSTALLED = True
