"""srflow-plugin: SRFlow (conditional normalizing flow super-resolution) for BasicSR."""
import os

from setuptools import find_packages, setup
from setuptools.command.build_py import build_py

HERE = os.path.dirname(os.path.abspath(__file__))
PTH_FILE = 'srflow_plugin.pth'


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


setup(
    name='srflow-plugin',
    version='0.1.0',
    description='SRFlow super-resolution with a conditional normalizing flow, as a BasicSR plugin',
    long_description=open(os.path.join(HERE, 'README.md'), encoding='utf-8').read(),
    long_description_content_type='text/markdown',
    python_requires='>=3.8',
    packages=find_packages(include=['srflow_plugin', 'srflow_plugin.*']),
    py_modules=['srflow_plugin_boot'],
    cmdclass={'build_py': BuildWithStartupHook},
    install_requires=[
        'basicsr==1.4.2',
        'torch>=1.7',
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
    extras_require={'test': ['pytest']},
    entry_points={
        'console_scripts': [
            'srflow-train = srflow_plugin.train:main',
            'srflow-test = srflow_plugin.test:main',
            'srflow-sample = srflow_plugin.tools.sample:main',
            'srflow-latent = srflow_plugin.tools.latent:main',
        ]
    },
    zip_safe=False,
)
