"""srflow-plugin: SRFlow (conditional normalizing flow super-resolution) for BasicSR."""
import os
import re
from setuptools import find_packages, setup
from setuptools.command.build_py import build_py
from setuptools.command.develop import develop
from setuptools.command.editable_wheel import editable_wheel

HERE = os.path.dirname(os.path.abspath(__file__))
PTH_FILE = 'srflow_plugin.pth'


def read_version():
    """The one version string, from srflow_plugin/version.py (not imported: that would import torch)."""
    with open(os.path.join(HERE, 'srflow_plugin', 'version.py'), encoding='utf-8') as f:
        return re.search(r"__version__ = '([^']+)'", f.read()).group(1)


class BuildWithStartupHook(build_py):
    """Also places srflow_plugin.pth at the root of site-packages.

    Python runs that file at start-up; it installs the light import hook of srflow_plugin_boot
    (no torch import), which lets basicsr import on modern torchvision and lets BasicSR's own
    entry points find the plugin.
    """

    def run(self):
        super().run()
        self.copy_file(os.path.join(HERE, PTH_FILE), os.path.join(self.build_lib, PTH_FILE), preserve_mode=0)

    def get_outputs(self, include_bytecode=1):
        return super().get_outputs(include_bytecode) + [os.path.join(self.build_lib, PTH_FILE)]


class _StrategyWithStartupHook:
    """Wraps setuptools' editable strategy: writes its files, then srflow_plugin.pth beside them. Python reads .pth
    files in name order, so the editable finder (``__editable__*.pth``) is in place before this one imports
    srflow_plugin_boot."""

    def __init__(self, strategy):
        self._strategy = strategy

    def __call__(self, wheel, files, mapping):
        self._strategy(wheel, files, mapping)
        with open(os.path.join(HERE, PTH_FILE), encoding='utf-8') as f:
            wheel.writestr(PTH_FILE, f.read())

    def __enter__(self):
        self._strategy.__enter__()
        return self

    def __exit__(self, *exc):
        return self._strategy.__exit__(*exc)


class EditableWithStartupHook(editable_wheel):
    """``pip install -e .`` also places srflow_plugin.pth at the root of site-packages (a regular install gets it
    from BuildWithStartupHook)."""

    def _select_strategy(self, *args, **kwargs):
        return _StrategyWithStartupHook(super()._select_strategy(*args, **kwargs))


class DevelopWithStartupHook(develop):
    """The legacy editable install (``setup.py develop``, which pip uses for ``-e`` without a pyproject.toml on older
    setuptools) also copies srflow_plugin.pth into site-packages, and removes it again with ``--uninstall``."""

    def run(self):
        super().run()
        install_dir = getattr(self, 'install_dir', None)
        if install_dir is None:  # newer setuptools: develop delegates to ``pip install -e`` (editable_wheel)
            return
        target = os.path.join(install_dir, PTH_FILE)
        if self.uninstall:
            if os.path.exists(target):
                os.remove(target)
        else:
            self.copy_file(os.path.join(HERE, PTH_FILE), target, preserve_mode=0)


setup(
    name='srflow-plugin',
    version=read_version(),
    description='SRFlow super-resolution with a conditional normalizing flow, as a BasicSR plugin',
    long_description=open(os.path.join(HERE, 'README.md'), encoding='utf-8').read(),
    long_description_content_type='text/markdown',
    license='Apache License 2.0',
    python_requires='>=3.9',  # math.lcm
    packages=find_packages(include=['srflow_plugin', 'srflow_plugin.*']),
    py_modules=['srflow_plugin_boot'],
    package_data={'srflow_plugin': ['pretrained/*.pth']},  # the built-in model (docs/model-card.md)
    cmdclass={
        'build_py': BuildWithStartupHook,
        'editable_wheel': EditableWithStartupHook,
        'develop': DevelopWithStartupHook
    },
    install_requires=[
        'basicsr==1.4.2',
        'torch>=1.13',  # torch.load(weights_only=True)
        'torchvision',
        'opencv-python',
        'lmdb',
        'pyyaml',
        'lpips',
        'addict',
        'numpy',
        'tqdm',
        'scikit-image',
    ],
    extras_require={'test': ['pytest', 'flake8', 'isort>=9,<10']},
    entry_points={
        'console_scripts': [
            'srflow-train = srflow_plugin.train:main',
            'srflow-test = srflow_plugin.test:main',
            'srflow-sample = srflow_plugin.tools.sample:cli',
            'srflow-latent = srflow_plugin.tools.latent:cli',
            'srflow-measure = srflow_plugin.tools.measure:cli',
            'srflow-prepare-data = srflow_plugin.tools.prepare_data:cli',
            'srflow-convert = srflow_plugin.tools.convert:cli',
            'srflow-complexity = srflow_plugin.tools.complexity:cli',
            'srflow-compare = srflow_plugin.tools.compare:cli',
        ]
    },
    zip_safe=False,
)
