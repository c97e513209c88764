"""Start-up glue for srflow-plugin, run in every Python process by ``srflow_plugin.pth``.

It must stay cheap: it imports neither torch nor basicsr. It installs one import hook that
 - serves ``torchvision.transforms.functional_tensor`` (removed in torchvision 0.17, still imported by
   basicsr 1.4.2) from its successor ``torchvision.transforms._functional_tensor`` when the old module is missing;
 - imports ``srflow_plugin`` right after ``basicsr`` finishes importing, so that BasicSR's own entry points
   (``basicsr/train.py``, ``python -m basicsr.test``, ...) find the plugin's registered classes.
"""
import importlib
import importlib.abc
import importlib.util
import sys
import warnings

OLD_TORCHVISION_MODULE = 'torchvision.transforms.functional_tensor'
NEW_TORCHVISION_MODULE = 'torchvision.transforms._functional_tensor'
PLUGIN = 'srflow_plugin'


class _AliasLoader(importlib.abc.Loader):
    """Creates the old torchvision module as a copy of the public names of its successor."""

    def create_module(self, spec):
        return None  # default module creation

    def exec_module(self, module):
        successor = importlib.import_module(NEW_TORCHVISION_MODULE)
        module.__dict__.update({k: v for k, v in vars(successor).items() if not k.startswith('__')})


class _RegisterAfterLoader(importlib.abc.Loader):
    """Wraps basicsr's own loader and imports the plugin once basicsr is fully executed."""

    def __init__(self, loader):
        self._loader = loader

    def __getattr__(self, name):  # resource readers and the like go to the real loader
        return getattr(self._loader, name)

    def create_module(self, spec):
        return self._loader.create_module(spec)

    def exec_module(self, module):
        self._loader.exec_module(module)
        try:
            importlib.import_module(PLUGIN)
        except Exception as error:  # never make basicsr itself unusable
            warnings.warn(f'basicsr was imported, but {PLUGIN} could not register its classes: {error!r}')


class _Finder(importlib.abc.MetaPathFinder):
    def __init__(self):
        self._resolving = set()

    def _real_spec(self, name):
        self._resolving.add(name)
        try:
            return importlib.util.find_spec(name)
        finally:
            self._resolving.discard(name)

    def find_spec(self, name, path=None, target=None):
        if name in self._resolving or name not in (OLD_TORCHVISION_MODULE, 'basicsr'):
            return None
        spec = self._real_spec(name)
        if name == OLD_TORCHVISION_MODULE:
            if spec is not None or importlib.util.find_spec(NEW_TORCHVISION_MODULE) is None:
                return None  # the old torchvision still has it, or there is nothing to alias
            return importlib.util.spec_from_loader(name, _AliasLoader())
        if spec is None or spec.loader is None or PLUGIN in sys.modules:
            return None
        spec.loader = _RegisterAfterLoader(spec.loader)
        return spec


def install():
    """Put the hook first on ``sys.meta_path``; calling it again does nothing."""
    if not any(isinstance(finder, _Finder) for finder in sys.meta_path):
        sys.meta_path.insert(0, _Finder())
