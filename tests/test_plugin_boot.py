"""Installing the plugin: basicsr imports on modern torchvision, BasicSR finds the plugin, start-up stays light."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def python(code, cwd):
    env = dict(os.environ, PYTHONPATH=str(REPO))
    run = subprocess.run([sys.executable, '-c', code], cwd=cwd, env=env, capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    return run.stdout.strip()


def test_a_python_process_that_does_not_use_basicsr_imports_no_torch(tmp_path):
    out = python('import sys; import srflow_plugin_boot; '
                 'print("torch" in sys.modules, any(type(f).__name__ == "_Finder" for f in sys.meta_path))', tmp_path)
    assert out == 'False True'


def test_importing_basicsr_alone_registers_the_plugin(tmp_path):
    # what BasicSR's own basicsr/train.py and basicsr/test.py rely on: they import basicsr, never the plugin
    out = python('import basicsr; from basicsr.utils.registry import ARCH_REGISTRY, MODEL_REGISTRY; '
                 'print("SRFlowNet" in ARCH_REGISTRY, "SRFlowRRDBNet" in ARCH_REGISTRY, '
                 '"SRFlowModel" in MODEL_REGISTRY)', tmp_path)
    assert out == 'True True True'


def test_old_torchvision_module_name_serves_the_new_module(tmp_path):
    out = python('import torchvision.transforms.functional_tensor as old; '
                 'import torchvision.transforms._functional_tensor as new; '
                 'print(old.rgb_to_grayscale is new.rgb_to_grayscale)', tmp_path)
    assert out == 'True'


def test_importing_after_basicsr_twice_and_reloading_does_not_fail(tmp_path):
    out = python('import importlib, basicsr, srflow_plugin; from basicsr.utils.registry import ARCH_REGISTRY; '
                 'importlib.import_module("srflow_plugin"); '
                 'arch = importlib.reload(importlib.import_module("srflow_plugin.archs.srflow_arch")); '
                 'print(ARCH_REGISTRY.get("SRFlowNet") is arch.SRFlowNet)', tmp_path)
    assert out == 'True'


def test_a_different_class_under_a_taken_name_is_an_error():
    from basicsr.utils.registry import ARCH_REGISTRY

    from srflow_plugin.utils import register
    with pytest.raises(KeyError, match="different 'RRDBNet'"):

        @register(ARCH_REGISTRY)
        class RRDBNet:  # noqa: F811 - deliberately clashes with BasicSR's
            pass
