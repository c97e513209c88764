"""Devices: the console commands' ``--device auto`` (one resolver, srflow_plugin.tools.command), the ``device``
fixture's summary line, and the same sample of the same seed on every device."""
import shutil
from os import path as osp

import pytest
import torch

from srflow_plugin.inference import sampling
from srflow_plugin.tools import compare, latent, measure
from srflow_plugin.tools import sample as sample_tool
from srflow_plugin.tools.command import resolve_device
from srflow_plugin.utils.sampling import draw_noise, image_generator, scaled
from helpers.devices import CROSS_DEVICE_ATOL, DEVICES
from helpers.tiny import tiny_net, write_image, write_tiny_checkpoint

TESTS = osp.dirname(osp.abspath(__file__))
pytest_plugins = ['pytester']


@pytest.fixture
def no_cuda(monkeypatch):
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: False)
    monkeypatch.setattr(torch.cuda, 'device_count', lambda: 0)


@pytest.fixture
def one_gpu(monkeypatch):
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: True)
    monkeypatch.setattr(torch.cuda, 'device_count', lambda: 1)


def test_auto_is_the_gpu_when_torch_sees_one(one_gpu):
    assert resolve_device('auto') == torch.device('cuda')
    assert resolve_device('cuda:0') == torch.device('cuda:0')


def test_auto_is_the_cpu_without_a_gpu(no_cuda):
    assert resolve_device('auto') == torch.device('cpu') and resolve_device('cpu') == torch.device('cpu')


@pytest.mark.parametrize('name, message', [
    ('cuda', r"--device cuda: torch sees no CUDA device here; use --device cpu or auto"),
    ('cuda:1', r"--device cuda:1: torch sees no CUDA device here"),
    ('gpu', r"--device 'gpu': not a device name \(auto, cpu, cuda, cuda:1, ...\)"),
    ('meta', r"--device meta: the commands run on cpu or cuda"),
])
def test_a_device_this_machine_lacks_is_an_error_naming_the_option(no_cuda, name, message):
    with pytest.raises(ValueError, match=message):
        resolve_device(name)


def test_a_gpu_index_beyond_the_machine_is_an_error_naming_the_count(one_gpu):
    with pytest.raises(ValueError, match=r'--device cuda:2: this machine has 1 CUDA device\(s\) \(cuda:0 .. cuda:0\)'):
        resolve_device('cuda:2')


def test_every_console_command_with_a_network_defaults_to_auto():
    assert sample_tool.parse_args(['-i', 'x', '-c', 'y', '-o', 'z']).device == 'auto'
    assert latent.parse_args(['sweep', '-c', 'y', '-o', 'z', '-i', 'x']).device == 'auto'
    assert measure.parse_args(['--sr', 'x', '--gt', 'y', '--scale', '4']).device == 'auto'
    assert compare.parse_args(['--gt', 'x', '--lr', 'y', '--out', 'z', '--model', 'a=b']).device == 'auto'


def test_srflow_sample_on_a_missing_gpu_exits_1_naming_the_option_and_writes_nothing(no_cuda, tmp_path, capsys):
    write_tiny_checkpoint(tmp_path / 'tiny.pth')
    write_image(tmp_path / 'lr' / 'a.png', 8, 8)
    status = sample_tool.cli(['-i', str(tmp_path / 'lr'), '-c', str(tmp_path / 'tiny.pth'), '-o',
                              str(tmp_path / 'out'), '--device', 'cuda'])
    assert status == 1
    assert capsys.readouterr().err.strip() == ('srflow-sample: error: --device cuda: torch sees no CUDA device here; '
                                               'use --device cpu or auto')
    assert not (tmp_path / 'out').exists()


def test_a_sample_on_each_device_equals_the_float64_cpu_sample_of_the_same_seed(device):
    # the per-image noise comes from a CPU generator on every device, so only float rounding may differ; the
    # reference decodes the same (float32) noise in float64 on the CPU
    net = tiny_net()
    lq = torch.rand(1, 3, 6, 8, generator=torch.Generator().manual_seed(0))
    ours = sampling.sample_image(net.to(device), lq, [0.0, 0.8], 2, image_generator(0, 'img'))
    noise = draw_noise(net, 6, 8, 2, image_generator(0, 'img'))
    assert all(z.device.type == 'cpu' for sample in noise for z in sample)
    reference_net = tiny_net().double()
    with torch.no_grad():
        reference = {(t, s): reference_net.decode(lq.double(), latents=[z.double() for z in scaled(noise[s], t)])
                     for t, s in [(0.0, 0), (0.8, 0), (0.8, 1)]}
    assert ours.keys() == reference.keys()
    for key, sr in ours.items():
        assert sr.device.type == 'cpu' and sr.dtype == torch.float32
        assert (sr.double() - reference[key]).abs().max().item() < CROSS_DEVICE_ATOL, key
    assert (ours[(0.8, 0)] - ours[(0.8, 1)]).abs().max().item() > 0.05  # two samples, two pictures


def test_the_summary_counts_the_device_tests_of_each_device(pytester):
    shutil.copy(osp.join(TESTS, 'conftest.py'), pytester.path / 'conftest.py')
    shutil.copytree(osp.join(TESTS, 'helpers'), pytester.path / 'helpers')
    pytester.makepyfile(test_inner='''
        import pytest

        def test_runs(device):
            assert device.type in ('cpu', 'cuda')

        def test_skips(device):
            pytest.skip('not here')

        def test_without_a_device():
            pass
    ''')
    result = pytester.runpytest_subprocess('-p', 'no:cacheprovider')
    result.assert_outcomes(passed=1 + len(DEVICES), skipped=len(DEVICES))
    cuda = ('2 tests ran on cuda (1 passed, 1 skipped)' if torch.cuda.is_available() else
            '0 tests ran on cuda: torch.cuda.is_available() is False here')
    result.stdout.fnmatch_lines([f'devices: 2 tests ran on cpu (1 passed, 1 skipped); {cuda}'])
