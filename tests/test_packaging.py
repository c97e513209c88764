"""setup.py: one version, correct floors, console commands that exit 0 / non-zero, and the start-up hook of an
editable install (``pip install -e .``)."""
import glob
import importlib
import os
import re
import shutil
import subprocess
import sys
import zipfile
from os import path as osp

import pytest

import srflow_plugin
from helpers.tiny import write_image, write_tiny_checkpoint
from helpers.train import REPO, subprocess_env

SETUP = open(osp.join(REPO, 'setup.py'), encoding='utf-8').read()
COMMANDS = dict(re.findall(r"'(srflow-[a-z-]+) = ([\w.]+:\w+)'", SETUP))


def test_setup_states_the_floors_the_code_needs_and_reads_the_one_version():
    assert "python_requires='>=3.9'" in SETUP  # math.lcm
    assert "'torch>=1.13'" in SETUP  # torch.load(weights_only=True)
    assert "version=read_version()" in SETUP and srflow_plugin.__version__ not in SETUP


def test_every_tool_is_a_console_command():
    tools = {'srflow-sample', 'srflow-latent', 'srflow-measure', 'srflow-prepare-data', 'srflow-convert'}
    assert tools <= set(COMMANDS)
    assert all(COMMANDS[name].endswith(':cli') for name in tools)


def _run_entry_point(name, args, cwd):
    """What the installed console script does: ``sys.exit(<entry point>())``."""
    module, function = COMMANDS[name].split(':')
    code = f'import sys; sys.argv[1:] = {args!r}; from {module} import {function}; sys.exit({function}())'
    return subprocess.run([sys.executable, '-c', code], cwd=str(cwd), env=subprocess_env(), capture_output=True,
                          text=True, timeout=300)


@pytest.fixture(scope='module')
def inputs(tmp_path_factory):
    root = tmp_path_factory.mktemp('cli')
    write_tiny_checkpoint(root / 'tiny.pth')
    write_image(root / 'lr' / 'a.png', 8, 8, seed=1)
    return root


def test_srflow_sample_and_srflow_latent_return_status_0_and_print_no_return_value(inputs, tmp_path, capsys):
    sample = importlib.import_module(COMMANDS['srflow-sample'].split(':')[0]).cli
    latent = importlib.import_module(COMMANDS['srflow-latent'].split(':')[0]).cli
    assert sample(['-i', str(inputs / 'lr'), '-c', str(inputs / 'tiny.pth'), '-o', str(tmp_path / 'out'),
                   '--temperatures', '0.8', '--num_samples', '1']) == 0
    assert latent(['sweep', '-i', str(inputs / 'lr' / 'a.png'), '-c', str(inputs / 'tiny.pth'), '-o', str(tmp_path),
                   '--temperatures', '0', '0.5']) == 0
    out = capsys.readouterr()
    assert os.listdir(tmp_path / 'out') == ['a_t0.8_s0.png'] and osp.isfile(tmp_path / 'a_sweep.png')
    assert "['" not in out.out + out.err and 'tensor(' not in out.out + out.err  # no dumped paths or tensors


def test_a_failing_command_exits_1_with_one_line_naming_the_file(inputs, tmp_path):
    (tmp_path / 'broken.png').write_bytes(b'')
    result = _run_entry_point('srflow-sample', ['-i', str(tmp_path / 'broken.png'), '-c', str(inputs / 'tiny.pth'),
                                                '-o', str(tmp_path / 'out')], tmp_path)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [f'srflow-sample: error: Cannot read image {tmp_path / "broken.png"}'
                                                  ': the file is empty (0 bytes).']


@pytest.mark.parametrize('name', ['srflow-sample', 'srflow-latent', 'srflow-measure', 'srflow-prepare-data',
                                  'srflow-convert'])
def test_help_names_the_console_command_and_shows_defaults(name, capsys):
    module = importlib.import_module(COMMANDS[name].split(':')[0])
    with pytest.raises(SystemExit) as exit_status:
        module.main(['--help'])
    assert exit_status.value.code == 0
    text = ' '.join(capsys.readouterr().out.split())  # argparse wraps lines
    assert text.startswith(f'usage: {name} ') and 'scripts/' not in text
    if name == 'srflow-sample':
        assert '(default: [0.0, 0.8, 0.9])' in text and 'samples per temperature > 0 (temperature 0 gives one) ' \
            '(default: 3)' in text


def build_wheel(tmp_path, hook):
    """Copies the source tree (without outputs and data) and builds the wheel ``build_meta.<hook>`` makes; returns
    (source folder, wheel path)."""
    source = tmp_path / 'src'
    outputs = ('.git', '__pycache__', '*.egg-info', 'build', 'docs', 'experiments', 'results', 'demo_output',
               'datasets')
    shutil.copytree(REPO, source, ignore=shutil.ignore_patterns(*outputs))
    build = subprocess.run([sys.executable, '-c', 'import sys; from setuptools import build_meta; '
                            f'build_meta.{hook}(sys.argv[1])', str(tmp_path / 'wheel')], cwd=str(source),
                           capture_output=True, text=True, timeout=300)
    assert build.returncode == 0, build.stderr[-3000:]
    return source, glob.glob(str(tmp_path / 'wheel' / '*.whl'))[0]


def test_a_regular_install_contains_the_builtin_model(tmp_path):
    """The wheel ``pip install .`` installs holds srflow_plugin/pretrained/srflow_builtin_x4.pth, byte for byte."""
    _, wheel = build_wheel(tmp_path, 'build_wheel')
    with zipfile.ZipFile(wheel) as archive:
        shipped = archive.read('srflow_plugin/pretrained/srflow_builtin_x4.pth')
    assert shipped == open(osp.join(REPO, 'srflow_plugin', 'pretrained', 'srflow_builtin_x4.pth'), 'rb').read()


def test_an_editable_install_also_gets_the_startup_hook(tmp_path):
    """Builds the editable wheel ``pip install -e .`` would install, puts it in a fresh site folder and starts a
    Python without the system site-packages there: the hook of srflow_plugin_boot must be installed at start-up."""
    source, wheel = build_wheel(tmp_path, 'build_editable')
    with zipfile.ZipFile(wheel) as archive:
        assert archive.read('srflow_plugin.pth') == open(osp.join(REPO, 'srflow_plugin.pth'), 'rb').read()
        archive.extractall(tmp_path / 'site')
    env = {k: v for k, v in os.environ.items() if k != 'PYTHONPATH'}
    check = subprocess.run([sys.executable, '-S', '-c', 'import site, sys; site.addsitedir(sys.argv[1]); '
                            'print(type(sys.meta_path[0]).__module__, sys.modules["srflow_plugin_boot"].__file__)',
                            str(tmp_path / 'site')], cwd=str(tmp_path), env=env, capture_output=True, text=True)
    assert check.returncode == 0, check.stderr
    assert check.stdout.split() == ['srflow_plugin_boot', str(source / 'srflow_plugin_boot.py')]


def test_scripts_are_thin_programs_over_the_installed_package():
    scripts = glob.glob(osp.join(REPO, 'scripts', '*.py'))
    assert {'demo.py', 'benchmark_sampling.py', 'benchmark_training.py'} <= {osp.basename(p) for p in scripts}
    assert [p for p in scripts if 'sys.path' in open(p).read()] == []
    marker = 'spec_from' + '_file_location'  # split: this test must not name itself
    assert [p for p in glob.glob(osp.join(REPO, 'tests', '*.py')) if marker in open(p).read()] == []


def test_the_startup_file_is_silent_once_the_package_is_uninstalled(tmp_path):
    """pip's uninstall of a legacy editable install leaves srflow_plugin.pth behind: it must not break Python."""
    shutil.copy(osp.join(REPO, 'srflow_plugin.pth'), tmp_path / 'srflow_plugin.pth')
    env = {k: v for k, v in os.environ.items() if k != 'PYTHONPATH'}
    check = subprocess.run([sys.executable, '-S', '-c', 'import site, sys; site.addsitedir(sys.argv[1]); '
                            'print("srflow_plugin_boot" in sys.modules)', str(tmp_path)], cwd=str(tmp_path), env=env,
                           capture_output=True, text=True)
    assert (check.returncode, check.stdout, check.stderr) == (0, 'False\n', '')
