import logging

import pytest
import torch


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
