"""srflow-plugin: SRFlow for BasicSR.

Importing this package registers the SRFlow architecture, loss, metrics, models and dataset in BasicSR's
registries. It first installs the import hook of ``srflow_plugin_boot`` so that basicsr 1.4.2 imports
on torchvision releases that no longer ship ``torchvision.transforms.functional_tensor``.
"""
import srflow_plugin_boot

srflow_plugin_boot.install()

# flake8: noqa: E402  (the hook must be in place before basicsr is imported)
from .archs import *  # noqa: F401,F403
from .data import *  # noqa: F401,F403
from .losses import *  # noqa: F401,F403
from .metrics import *  # noqa: F401,F403
from .models import *  # noqa: F401,F403
from .utils.basicsr_compat import install as _install_basicsr_changes
from .version import __version__  # noqa: F401

_install_basicsr_changes()  # safe YAML, weights_only training states, gloo on CPU (see utils/basicsr_compat.py)
