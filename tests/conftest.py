"""Fixtures shared by the tests. Importing the package here, first, registers the plugin in BasicSR's registries
and installs the torchvision shim before any test module imports basicsr, so test modules may order their imports
as isort does."""
import logging

import pytest
import torch
import torchvision

import srflow_plugin  # noqa: F401
from helpers.devices import DEVICES, full_float32
from helpers.tiny import write_image, write_tiny_checkpoint


@pytest.fixture(scope='module')
def single_thread():
    """2 shared cores: for many small networks, one torch thread per test process beats two fighting ones."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


class _Records(logging.Handler):
    """Collects the messages of BasicSR's logger, which does not propagate to pytest's caplog/capfd once another
    test has set it up with its own handlers."""

    def __init__(self):
        super().__init__(logging.INFO)
        self.messages = []

    def emit(self, record):
        self.messages.append(record.getMessage())


@pytest.fixture
def basicsr_messages():
    """The list of messages BasicSR's logger emits (INFO and above) during the test. (Its level is only set to
    INFO when a log file is given, so without this a test's INFO lines depend on which tests ran before.)"""
    records = _Records()
    logger = logging.getLogger('basicsr')
    level = logger.level
    logger.setLevel(logging.INFO)
    logger.addHandler(records)
    yield records.messages
    logger.removeHandler(records)
    logger.setLevel(level)


# ------------------------------------------------------------------------------ devices (tests/helpers/devices.py)
@pytest.fixture(params=DEVICES)
def device(request):
    """Each available device in turn: ``cpu``, and ``cuda`` where torch sees a GPU (with TF32 off)."""
    device = torch.device(request.param)
    with full_float32(device):
        yield device


_DEVICE_OF = {}  # test id -> the device it runs on, for the tests that take the ``device`` fixture
_OUTCOME = {}  # test id -> passed / failed / skipped (the worst of its set-up, call and teardown)


def pytest_configure(config):
    config.addinivalue_line('markers', 'cuda: the test runs on the CUDA device (select them with -m cuda)')


def pytest_collection_modifyitems(config, items):
    for item in items:
        device = item.callspec.params.get('device') if hasattr(item, 'callspec') else None
        if device is not None:
            _DEVICE_OF[item.nodeid] = device
            if device == 'cuda':
                item.add_marker(pytest.mark.cuda)


def pytest_runtest_logreport(report):
    if report.nodeid not in _DEVICE_OF:
        return
    if report.failed:
        _OUTCOME[report.nodeid] = 'failed'
    elif report.skipped and _OUTCOME.get(report.nodeid) != 'failed':
        _OUTCOME[report.nodeid] = 'skipped'
    elif report.when == 'call':
        _OUTCOME.setdefault(report.nodeid, 'passed')


def pytest_terminal_summary(terminalreporter):
    """One line: how many device tests ran on each device, and their outcomes."""
    counts = {}
    for nodeid, outcome in _OUTCOME.items():
        per_device = counts.setdefault(_DEVICE_OF[nodeid], {})
        per_device[outcome] = per_device.get(outcome, 0) + 1
    parts = []
    for device in ('cpu', 'cuda'):
        ran = counts.get(device, {})
        details = ', '.join(f'{n} {outcome}' for outcome, n in sorted(ran.items()))
        parts.append(f'{sum(ran.values())} tests ran on {device}' + (f' ({details})' if details else ''))
    if 'cuda' not in DEVICES:
        parts[-1] += ': torch.cuda.is_available() is False here'
    terminalreporter.write_line('devices: ' + '; '.join(parts))


@pytest.fixture(scope='module')
def pair(tmp_path_factory):
    """A folder with the tiny network's checkpoint ``tiny.pth``, an LR image ``lr/0801x4.png`` and its GT
    ``gt/0801.png`` (DIV2K's naming)."""
    root = tmp_path_factory.mktemp('pair')
    write_tiny_checkpoint(root / 'tiny.pth')
    write_image(root / 'lr' / '0801x4.png', 8, 10, seed=3)
    write_image(root / 'gt' / '0801.png', 32, 40, seed=4)
    return root


@pytest.fixture(scope='module')
def random_hub(tmp_path_factory):
    """Torch hub folder with a random-weight AlexNet (classifier stored as expanded zeros, LPIPS skips it)."""
    hub = tmp_path_factory.mktemp('torch_home') / 'hub'
    (hub / 'checkpoints').mkdir(parents=True)
    torch.manual_seed(0)
    state = torchvision.models.alexnet(weights=None).state_dict()
    state = {k: v if k.startswith('features.') else torch.zeros(1).expand(v.shape) for k, v in state.items()}
    torch.save(state, str(hub / 'checkpoints' / 'alexnet-owt-7be5be79.pth'))
    return str(hub)


@pytest.fixture
def lpips_hub(random_hub, monkeypatch):
    monkeypatch.setattr(torch.hub, '_hub_dir', random_hub)
    return random_hub
