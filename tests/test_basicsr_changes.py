"""Every change to BasicSR's behaviour goes through srflow_plugin/utils/basicsr_compat.py: the registry write and
the entry points' pipeline changes, applied as its table says."""
from types import SimpleNamespace

import pytest
from basicsr import test as basicsr_test
from basicsr import train as basicsr_train
from basicsr.utils.registry import Registry

from srflow_plugin.utils import basicsr_compat, register
from srflow_plugin.utils.resume import CountingCPUPrefetcher, ResumableSampler

TRAIN_NAMES = ('load_resume_state', 'parse_options', 'EnlargedSampler', 'CPUPrefetcher', 'CUDAPrefetcher',
               'build_model')


def test_the_train_pipeline_change_replaces_what_the_table_lists_and_wraps_build_model_once(monkeypatch):
    for name in TRAIN_NAMES:  # restored after the test
        monkeypatch.setattr(basicsr_train, name, getattr(basicsr_train, name))
    built = []
    monkeypatch.setitem(basicsr_compat._ORIGINAL, 'build_model', lambda opt: built.append(opt) or SimpleNamespace())

    def load(opt):
        return None

    def parse(root_path, is_train=True):
        return {}, None

    basicsr_compat.change_train_pipeline(load, parse)
    position = basicsr_compat.change_train_pipeline(load, parse)  # a second run in the same process
    model = basicsr_train.build_model({'world_size': 3})
    assert len(built) == 1  # BasicSR's build_model once, not wrapped twice
    assert model.training_position is position and position.world_size == 3
    assert basicsr_train.load_resume_state is load and basicsr_train.parse_options is parse
    assert basicsr_train.EnlargedSampler.func is ResumableSampler
    assert basicsr_train.CPUPrefetcher.func is CountingCPUPrefetcher
    assert basicsr_train.CPUPrefetcher.keywords == {'position': position}


def test_the_test_pipeline_change_replaces_only_parse_options(monkeypatch):
    monkeypatch.setattr(basicsr_test, 'parse_options', basicsr_test.parse_options)
    pipeline = basicsr_test.test_pipeline

    def parse(root_path, is_train=False):
        return {}, None

    basicsr_compat.change_test_pipeline(parse)
    assert basicsr_test.parse_options is parse and basicsr_test.test_pipeline is pipeline


def test_registering_the_same_class_again_replaces_it_and_a_different_one_is_refused():
    registry = Registry('demo')

    def make():

        class Net:
            pass

        return Net

    first, again = make(), make()  # same module and qualified name: a re-import
    assert register(registry)(first) is first and register(registry)(again) is again
    assert registry.get('Net') is again and list(registry.keys()) == ['Net']

    class Net:  # another class of the same name
        pass

    with pytest.raises(KeyError, match="demo registry already has a different 'Net'"):
        register(registry)(Net)
    assert registry.get('Net') is again
