"""Every change the plugin makes to BasicSR 1.4.2's behaviour, in one place (no installed file is edited).

| what | where | when | why |
|---|---|---|---|
| ``basicsr.utils.options.ordered_yaml`` -> :func:`safe_ordered_yaml` | :func:`install` | import | option files \
parsed with a *safe* YAML loader (mappings still ordered): ``!!python/object/apply:os.system`` is an error, not \
code; so are duplicate keys, alias bombs and documents that are not a mapping \
(:mod:`srflow_plugin.utils.option_file`) |
| ``BaseModel.load_network`` -> ``utils.checkpoint.load_network_weights_only`` | :func:`install` | import | \
``path.pretrain_network_g`` of every BasicSR model read with ``torch.load(weights_only=True)`` on every supported \
torch (also under ``TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD=1``); non-finite weights refused |
| ``torch.serialization.add_safe_globals([Counter])`` | :func:`install` | import | ``torch.load(weights_only=True)`` \
reads BasicSR training states (MultiStepLR's milestones are a ``collections.Counter``) |
| ``basicsr.utils.dist_util._init_dist_pytorch`` -> :func:`_init_dist_pytorch` | :func:`install` | import | \
``--launcher pytorch`` without CUDA: gloo instead of NCCL, no device selection (BasicSR divides by the GPU count) |
| ``Registry._obj_map[name] = obj`` | :func:`registry_put` | import | the plugin's classes register again on \
``importlib.reload`` / a second import name (``Registry.register`` refuses a taken name; see ``utils/registry.py``) |
| ``basicsr.train.load_resume_state`` | :func:`change_train_pipeline` | ``srflow-train`` | states read with \
``weights_only=True`` onto the CPU (BasicSR maps onto ``torch.cuda.current_device()``), latest by iteration |
| ``basicsr.train.parse_options``, ``basicsr.test.parse_options`` | :func:`change_train_pipeline`, \
:func:`change_test_pipeline` | ``srflow-train``, ``srflow-test`` | the plugin's option checks before any data loader \
or model is built |
| ``basicsr.train.EnlargedSampler``, ``CPUPrefetcher``, ``CUDAPrefetcher``, ``build_model`` | \
:func:`change_train_pipeline` | ``srflow-train`` | exact resume: the data position and generator states \
(:mod:`srflow_plugin.utils.resume`) |
| ``torchvision.transforms.functional_tensor`` served from ``_functional_tensor``; ``srflow_plugin`` imported \
after ``basicsr`` | ``srflow_plugin_boot.py`` (start-up file ``srflow_plugin.pth``) | start-up | basicsr 1.4.2 \
imports on torchvision >= 0.17; BasicSR's own ``basicsr/train.py`` / ``test.py`` find the plugin's classes |

"import" rows hold in every process that imports ``srflow_plugin`` (the start-up hook does so right after
``basicsr`` is imported, so also for BasicSR's own entry points); the ``srflow-train`` / ``srflow-test`` rows only
inside the plugin's entry points (``python -m srflow_plugin.train`` / ``.test``), so BasicSR's own ``train.py``
keeps its resume behaviour. The start-up hook lives apart because it must not import torch or basicsr.
"""
import collections
import os
import warnings
from functools import partial

import torch
import yaml

from srflow_plugin.utils.checkpoint import load_network_weights_only
from srflow_plugin.utils.option_file import OptionLoader
from srflow_plugin.utils.resume import CountingCPUPrefetcher, CountingCUDAPrefetcher, ResumableSampler, TrainingPosition

_INSTALLED = False


def safe_ordered_yaml():
    """(Loader, Dumper) like ``basicsr.utils.options.ordered_yaml``, with the plugin's option loader
    (:class:`~srflow_plugin.utils.option_file.OptionLoader`: plain data only, ordered mappings; duplicate keys, alias
    bombs and documents that are not a mapping are refused)."""
    dumper = getattr(yaml, 'CDumper', yaml.Dumper)
    dumper.add_representer(collections.OrderedDict, lambda d, data: d.represent_dict(data.items()))
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
    """Applies the "import" changes of the module docstring's table (once)."""
    global _INSTALLED
    if _INSTALLED:
        return
    from basicsr.models.base_model import BaseModel
    from basicsr.utils import dist_util, options
    options.ordered_yaml = safe_ordered_yaml
    BaseModel.load_network = load_network_weights_only
    dist_util._init_dist_pytorch = _init_dist_pytorch
    torch.serialization.add_safe_globals([collections.Counter])
    _INSTALLED = True


def registry_put(registry, name, obj):
    """Puts ``obj`` under ``name`` in a BasicSR ``Registry``, replacing an entry of that name (the one write to the
    registry's private map; ``utils.registry.register`` decides when a replacement is allowed)."""
    registry._obj_map[name] = obj


_ORIGINAL = {}  # BasicSR's own functions, kept once so that changing a pipeline twice does not wrap them twice


def change_train_pipeline(load_resume_state, parse_options):
    """Changes ``basicsr.train`` for ``srflow-train``: ``load_resume_state`` and ``parse_options`` replace
    BasicSR's, and its sampler, prefetchers and ``build_model`` report to one
    :class:`~srflow_plugin.utils.resume.TrainingPosition`, which the model saves in, and restores from, its
    training states (exact resume).

    Returns:
        TrainingPosition: the position the loop reports to.
    """
    from basicsr import train as basicsr_train
    build_original = _ORIGINAL.setdefault('build_model', basicsr_train.build_model)
    position = TrainingPosition()

    def build_model(opt):
        position.world_size = opt['world_size']
        model = build_original(opt)
        model.training_position = position  # models other than SRFlowModel ignore it
        return model

    basicsr_train.load_resume_state = load_resume_state
    basicsr_train.parse_options = parse_options
    basicsr_train.EnlargedSampler = partial(ResumableSampler, position=position)
    basicsr_train.CPUPrefetcher = partial(CountingCPUPrefetcher, position=position)
    basicsr_train.CUDAPrefetcher = partial(CountingCUDAPrefetcher, position=position)
    basicsr_train.build_model = build_model
    return position


def change_test_pipeline(parse_options):
    """Changes ``basicsr.test`` for ``srflow-test``: ``parse_options`` replaces BasicSR's."""
    from basicsr import test as basicsr_test
    basicsr_test.parse_options = parse_options
