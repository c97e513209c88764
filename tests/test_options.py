"""The options schema: one check per option (errors name key and value), defaults read through it, and
docs/options.md generated from it."""
import inspect
import re
from os import path as osp

import pytest
import torch

from srflow_plugin.models import srflow_model, training_guard
from srflow_plugin.models.srflow_model import SRFlowModel
from srflow_plugin.options_schema import SCHEMA, OptionError, check_options, get_option, options_markdown
from helpers.train import make_opt

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))


def test_docs_options_md_is_generated_from_the_schema():
    with open(osp.join(REPO, 'docs', 'options.md')) as f:
        assert f.read() == options_markdown(), 'regenerate: python -m srflow_plugin.options_schema > docs/options.md'


def test_every_option_has_a_check_and_a_description():
    for section, spec in SCHEMA.items():
        for key, option in spec.keys.items():
            assert callable(option.check) and len(option.doc) > 10, f'{section}.{key}'


@pytest.mark.parametrize('section, key, value, message', [
    ('train.optim_rrdb', 'lr', '1e-5', "'train.optim_rrdb.lr' = '1e-5' (str): must be a number >= 0 (YAML reads"),
    ('train.optim_g', 'lr', '1e-3', "'train.optim_g.lr' = '1e-3' (str)"),
    ('train', 'train_rrdb_delay', 'half', "'train.train_rrdb_delay' = 'half' (str): must be a number >= 0 and <= 1"),
    ('train', 'train_rrdb_delay', 1.5, "'train.train_rrdb_delay' = 1.5 (float)"),
    ('train', 'total_iter', '100', "'train.total_iter' = '100' (str): must be an integer >= 1"),
    ('train', 'total_iter', -5, "'train.total_iter' = -5 (int): must be an integer >= 1"),
    ('train', 'total_iter', 10.5, "'train.total_iter' = 10.5 (float)"),
    ('train', 'grad_clip_norm', 0, "'train.grad_clip_norm' = 0 (int): must be a number > 0"),
    ('train', 'ema_decay', True, "'train.ema_decay' = True (bool)"),
    ('train.guard', 'loss_deviations', 'many', "'train.guard.loss_deviations' = 'many'"),
    ('train.guard', 'cooldown_factor', 2.0, "'train.guard.cooldown_factor' = 2.0 (float): must be a number > 0 and"),
    ('train.guard', 'enabled', 'yes please', "'train.guard.enabled' = 'yes please' (str): must be true or false"),
    ('val', 'heats', [0, 'hot'], "'val.heats[]' = 'hot'"),
    ('val', 'n_sample', 0, "'val.n_sample' = 0 (int): must be an integer >= 1"),
    ('val', 'val_freq', float('nan'), "'val.val_freq' = nan"),
])
def test_a_bad_value_is_an_error_naming_the_key_and_the_value(tmp_path, section, key, value, message):
    opt = make_opt(tmp_path)
    node = opt
    for part in section.split('.'):
        node = node.setdefault(part, {})
    node[key] = value
    with pytest.raises(OptionError) as error:
        check_options(opt)
    assert message in str(error.value)


def test_values_of_the_right_type_pass_and_whole_floats_count_as_integers(tmp_path):
    opt = make_opt(tmp_path, train={'total_iter': 2e5, 'optim_rrdb': {'lr': 1.0e-5}, 'train_rrdb_delay': 0,
                                    'guard': {'snapshot_freq': 50, 'enabled': False}}, val={'val_freq': 5e3})
    check_options(opt)
    assert get_option(opt, 'train.guard', 'snapshot_freq') == 50
    assert get_option(opt, 'train.guard', 'max_rejected') == SCHEMA['train.guard'].keys['max_rejected'].default


@pytest.mark.skipif(torch.cuda.is_available(), reason='needs a machine without CUDA')
def test_num_gpu_without_cuda_is_an_error_naming_the_option(tmp_path):
    with pytest.raises(OptionError, match="'num_gpu' = 1 \\(int\\): asks for CUDA devices but 0 are available"):
        SRFlowModel(make_opt(tmp_path, num_gpu=1))


def test_training_needs_total_iter_and_a_learning_rate(tmp_path):
    opt = make_opt(tmp_path)
    del opt['train']['total_iter']
    with pytest.raises(OptionError, match="'train.total_iter' is required"):
        check_options(opt)


def test_the_model_reads_no_plugin_option_past_the_schema():
    """Defaults live in the schema only: the model's set-up and step use get_option, never .get(key, default)."""
    for module in (srflow_model, training_guard):
        source = inspect.getsource(module)
        set_up = source.split('# ------------------------------------------------------------------ inference')[0]
        assert not re.findall(r"(?:train_opt|path_opt|\['(?:train|path)'\])\.get\(", set_up)
    with pytest.raises(KeyError):
        get_option({}, 'train', 'no_such_option')


def test_testing_reports_the_nll_on_the_training_scale_with_val_nll_quantization(tmp_path, basicsr_messages):
    from helpers.train import val_loader
    nlls = []
    for levels in (None, 256):
        torch.manual_seed(0)
        model = SRFlowModel(make_opt(tmp_path / str(levels), is_train=False,
                                     val={'heats': [0.0], 'n_sample': 1, 'nll_quantization': levels}))
        model.validation(val_loader(1), 0, None, save_img=False)
        nlls.append(model.metric_results['nll'])
    assert nlls[1] - nlls[0] == pytest.approx(8.0, abs=1e-6)  # log2(256): the training validation's scale
    log = '\n'.join(basicsr_messages)
    assert 'bits/dim (continuous density, no dequantisation constant)' in log
    assert 'bits/dim (discrete image, q = 256: continuous + log2(q))' in log
