"""SRFlowModel: NLL training, the frozen encoder, ActNorm init (also under DDP), skipped steps, validation."""
import csv
import os
import socket
from copy import deepcopy
from os import path as osp

import pytest
import torch
import torch.multiprocessing as mp

import srflow_plugin.losses  # noqa: F401
import srflow_plugin.metrics  # noqa: F401
from srflow_plugin.archs.flow_layers import ActNorm
from srflow_plugin.archs.rrdb_arch import SRFlowRRDBNet
from srflow_plugin.archs.srflow_arch import SRFlowNet
from srflow_plugin.models.srflow_model import SRFlowModel
from srflow_plugin.options_schema import OptionError
from helpers.devices import num_gpu
from helpers.train import TINY_NET, FakeTBLogger, ddp_actnorm_worker, ddp_train_worker, make_opt, val_loader


def batch(seed=0, n=2, lq_size=8):
    generator = torch.Generator().manual_seed(seed)
    return {'lq': torch.rand(n, 3, lq_size, lq_size, generator=generator),
            'gt': torch.rand(n, 3, lq_size * 4, lq_size * 4, generator=generator)}


def train_steps(model, iters, seed=0):
    for it in iters:
        model.feed_data(batch(seed + it))
        model.update_learning_rate(it)
        model.optimize_parameters(it)


def snapshot(module):
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def same(a, b):
    return all(torch.equal(a[k], b[k]) for k in a)


def actnorms(net):
    return {name: m for name, m in net.named_modules() if isinstance(m, ActNorm)}


def test_training_step_lowers_nll_on_a_repeated_batch(tmp_path, device):
    model = SRFlowModel(make_opt(tmp_path, train={'optim_g': {'type': 'Adam', 'lr': 3e-3}}, num_gpu=num_gpu(device)))
    assert next(model.net_g.parameters()).device.type == device.type
    losses = []
    for it in range(1, 16):
        model.feed_data(batch(0))
        model.optimize_parameters(it)
        losses.append(model.log_dict['l_nll'])
    assert losses[-1] < losses[0] - 0.05
    assert model.log_dict['skipped_steps'] == 0


def test_encoder_is_frozen_before_train_rrdb_delay_and_trains_after(tmp_path):
    # total_iter 4, delay 0.5: frozen at iterations 1-2, trained from iteration 3
    opt = make_opt(tmp_path, train={'total_iter': 4, 'train_rrdb_delay': 0.5,
                                    'optim_g': {'type': 'Adam', 'lr': 1e-3, 'weight_decay': 0.1}})
    model = SRFlowModel(opt)
    net = model.get_bare_model(model.net_g)
    encoder0, flow0 = snapshot(net.encoder), snapshot(net.levels)
    train_steps(model, [1, 2])
    assert same(snapshot(net.encoder), encoder0)
    assert not same(snapshot(net.levels), flow0)
    assert net.encoder.training is False  # no running state may move while frozen
    assert all(p.grad is None for p in net.encoder.parameters())
    assert all(p not in model.optimizer_g.state for p in net.encoder.parameters())  # Adam never saw them
    assert model.log_dict['encoder_trains'] == 0
    train_steps(model, [3])
    assert not same(snapshot(net.encoder), encoder0)
    assert net.encoder.training is True
    assert model.log_dict['encoder_trains'] == 1


def test_optim_rrdb_gives_the_encoder_its_own_learning_rate(tmp_path):
    model = SRFlowModel(make_opt(tmp_path, train={'optim_rrdb': {'lr': 1e-5}}))
    net = model.get_bare_model(model.net_g)
    flow_group, encoder_group = model.optimizer_g.param_groups
    assert (flow_group['lr'], encoder_group['lr']) == (1e-3, 1e-5)
    assert {id(p) for p in encoder_group['params']} == {id(p) for p in net.encoder.parameters()}
    assert len(flow_group['params']) + len(encoder_group['params']) == len(list(net.parameters()))


def test_actnorm_initialised_on_first_batch_and_copied_into_ema(tmp_path):
    # lr 0: the step itself changes nothing, so net_g_ema must hold exactly the initialised values
    model = SRFlowModel(make_opt(tmp_path, train={'ema_decay': 0.999, 'optim_g': {'type': 'Adam', 'lr': 0.0}}))
    net = model.get_bare_model(model.net_g)
    assert not any(m.initialized for m in actnorms(net).values())
    train_steps(model, [1])
    ema_layers = actnorms(model.net_g_ema)
    for name, layer in actnorms(net).items():
        assert layer.initialized and ema_layers[name].initialized
        # (equal up to the rounding of the EMA update 0.999 * x + 0.001 * x)
        torch.testing.assert_close(ema_layers[name].bias, layer.bias, rtol=1e-6, atol=1e-7)
        torch.testing.assert_close(ema_layers[name].logs, layer.logs, rtol=1e-6, atol=1e-7)
    first = next(iter(actnorms(net).values()))
    assert first.bias.abs().sum().item() > 0  # really data-dependent, not the zero default


def test_actnorm_init_is_identical_across_two_gloo_processes_with_different_data(tmp_path):
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        port = s.getsockname()[1]
    batches = [batch(seed=10), batch(seed=11)]
    batches[1]['gt'] = batches[1]['gt'] * 0.5 + 0.4  # clearly different statistics on rank 1
    mp.spawn(ddp_actnorm_worker, args=(2, port, str(tmp_path), batches), nprocs=2, join=True)
    after0, after1 = (torch.load(osp.join(tmp_path, f'after{r}.pt')) for r in (0, 1))
    assert same(after0, after1)
    # and equal to a single process initialising on both batches together
    reference = SRFlowNet(**{k: v for k, v in TINY_NET.items() if k != 'type'})
    reference.load_state_dict(torch.load(osp.join(tmp_path, 'before0.pt')))
    reference.train()
    with torch.no_grad():
        reference.encode(torch.cat([b['gt'] for b in batches]), torch.cat([b['lq'] for b in batches]))
    for name, layer in actnorms(reference).items():
        torch.testing.assert_close(after0[f'{name}.bias'], layer.bias, atol=1e-4, rtol=1e-4)
        torch.testing.assert_close(after0[f'{name}.logs'], layer.logs, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize('train', [{'train_rrdb_delay': 0},
                                   {'train_rrdb_delay': 0, 'pixel_opt': {'type': 'L1Loss', 'loss_weight': 0.1}}],
                         ids=['nll', 'nll+l1'])
def test_ddp_training_with_the_encoder_trained_keeps_both_gloo_ranks_identical(tmp_path, train):
    # the encoder's SR head never gets gradients from the flow: DDP must not wait for them
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        port = s.getsockname()[1]
    batches = [[batch(seed=20 + 10 * rank + it) for it in range(3)] for rank in range(2)]
    mp.spawn(ddp_train_worker, args=(2, port, str(tmp_path), batches, train), nprocs=2, join=True)
    after0, after1 = (torch.load(osp.join(tmp_path, f'after{r}.pt')) for r in (0, 1))
    assert same(after0, after1)
    before = torch.load(osp.join(tmp_path, 'before0.pt'))
    assert not torch.equal(after0['encoder.conv_first.weight'], before['encoder.conv_first.weight'])


def test_non_finite_loss_skips_the_step_and_leaves_weights_and_optimizer_untouched(tmp_path, device):
    model = SRFlowModel(make_opt(tmp_path, num_gpu=num_gpu(device)))
    net = model.get_bare_model(model.net_g)
    train_steps(model, [1])
    weights = snapshot(net)
    adam = deepcopy(model.optimizer_g.state_dict())
    bad = batch(5)
    bad['gt'][0, 0, 0, 0] = float('nan')
    model.feed_data(bad)
    model.optimize_parameters(2)
    assert same(snapshot(net), weights)
    after = model.optimizer_g.state_dict()
    assert after['state'].keys() == adam['state'].keys()
    for key, state in adam['state'].items():
        assert all(torch.equal(torch.as_tensor(v), torch.as_tensor(after['state'][key][n])) for n, v in state.items())
    assert model.log_dict['skipped_steps'] == 1
    train_steps(model, [3])  # training goes on
    assert model.log_dict['skipped_steps'] == 1 and not same(snapshot(net), weights)


def test_grad_clip_norm_bounds_the_gradient_at_the_optimizer_step(tmp_path):
    model = SRFlowModel(make_opt(tmp_path, train={'grad_clip_norm': 1e-3}))
    seen = []
    step = model.optimizer_g.step

    def recording_step(*args, **kwargs):
        grads = [p.grad for group in model.optimizer_g.param_groups for p in group['params'] if p.grad is not None]
        seen.append(torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in grads])).item())
        return step(*args, **kwargs)

    model.optimizer_g.step = recording_step
    train_steps(model, [1])
    assert model.log_dict['grad_norm'] > 1e-2  # the norm before clipping
    assert seen[0] == pytest.approx(1e-3, rel=1e-3)


def test_pixel_opt_adds_an_l1_loss_on_the_tau0_output(tmp_path):
    model = SRFlowModel(make_opt(tmp_path, train={'pixel_opt': {'type': 'L1Loss', 'loss_weight': 0.1}}))
    train_steps(model, [1])
    assert 0 < model.log_dict['l_pix'] < 1
    assert 'l_pix' not in SRFlowModel(make_opt(tmp_path / 'b')).log_dict


def test_pretrained_encoder_is_loaded_from_path_pretrain_network_rrdb(tmp_path):
    rrdb = SRFlowRRDBNet(3, 3, scale=4, num_feat=8, num_block=1, num_grow_ch=4)
    torch.save({'params': rrdb.state_dict()}, tmp_path / 'rrdb.pth')
    model = SRFlowModel(make_opt(tmp_path, path={'pretrain_network_rrdb': str(tmp_path / 'rrdb.pth')}))
    assert same(snapshot(model.get_bare_model(model.net_g).encoder), snapshot(rrdb))


def test_pretrain_network_g_takes_precedence_over_the_rrdb_checkpoint(tmp_path):
    rrdb = SRFlowRRDBNet(3, 3, scale=4, num_feat=8, num_block=1, num_grow_ch=4)
    torch.save({'params': rrdb.state_dict()}, tmp_path / 'rrdb.pth')
    whole = SRFlowNet(**{k: v for k, v in TINY_NET.items() if k != 'type'})
    torch.save({'params': whole.state_dict()}, tmp_path / 'net_g.pth')
    model = SRFlowModel(make_opt(tmp_path, path={'pretrain_network_rrdb': str(tmp_path / 'rrdb.pth'),
                                                 'pretrain_network_g': str(tmp_path / 'net_g.pth')}))
    assert same(snapshot(model.get_bare_model(model.net_g)), snapshot(whole))


@pytest.mark.parametrize('section, key, suggestion', [('train', 'train_rrdb_dealy', 'train_rrdb_delay'),
                                                      ('val', 'heat', 'heats'),
                                                      ('val', 'n_samples', 'n_sample'),
                                                      ('path', 'pretrain_network_rdb', 'pretrain_network_rrdb')])
def test_misspelled_plugin_option_is_an_error_naming_it_and_the_valid_ones(tmp_path, section, key, suggestion):
    opt = make_opt(tmp_path)
    opt[section][key] = 1
    with pytest.raises(OptionError) as error:
        SRFlowModel(opt)
    message = str(error.value)
    assert f"'{section}.{key}'" in message and f"Did you mean '{suggestion}'" in message
    assert 'grad_clip_norm' in message or 'n_sample' in message or 'strict_load_rrdb' in message


def test_basicsr_own_keys_in_the_plugin_sections_are_accepted(tmp_path):
    opt = make_opt(tmp_path, train={'warmup_iter': 2, 'ema_decay': 0.5}, val={'pbar': False, 'suffix': None},
                   path={'param_key_g': 'params', 'ignore_resume_networks': None})
    assert isinstance(SRFlowModel(opt), SRFlowModel)


def test_validation_reports_every_metric_per_temperature_and_the_nll(tmp_path):
    model = SRFlowModel(make_opt(tmp_path, val={'heats': [0.0, 0.5, 1.0], 'n_sample': 2}))
    tb = FakeTBLogger()
    model.validation(val_loader(2), 7, tb, save_img=True)
    expected = {'nll'} | {f'{m}_t{h}' for m in ('psnr', 'lr_psnr') for h in ('0', '0.5', '1')}
    assert set(model.metric_results) == expected
    assert 0 < model.metric_results['nll'] < 10
    assert all(0 < model.metric_results[f'psnr_t{h}'] < 40 for h in ('0', '0.5', '1'))  # untrained: low
    assert set(tb.scalars) == {f'metrics/unitval/{key}' for key in expected}
    assert tb.scalars['metrics/unitval/psnr_t0.5'] == (model.metric_results['psnr_t0.5'], 7)
    best = model.best_metric_results['unitval']
    assert best['psnr_t1']['iter'] == 7 and best['nll']['better'] == 'lower'


def test_validation_without_precomputed_conditions_gives_the_same_metrics(tmp_path):
    results = []
    for precompute in (True, False):
        torch.manual_seed(0)
        model = SRFlowModel(make_opt(tmp_path / str(precompute),
                                     val={'heats': [0.0, 0.8], 'n_sample': 2, 'precompute_condition': precompute}))
        model.validation(val_loader(2), 1, None, save_img=False)
        results.append(model.metric_results)
    assert results[0].keys() == results[1].keys()
    for key in results[0]:
        assert results[0][key] == pytest.approx(results[1][key], rel=1e-5, abs=1e-4)


def test_validation_nll_is_on_the_training_loss_scale_with_dequantisation(tmp_path):
    nlls = []
    for quantization in (None, 256):
        torch.manual_seed(0)
        model = SRFlowModel(make_opt(tmp_path / str(quantization), val={'heats': [0.0], 'n_sample': 1},
                                     train={'nll_opt': {'type': 'FlowNLLLoss', 'quantization': quantization}}))
        model.validation(val_loader(1), 1, None, save_img=False)
        nlls.append(model.metric_results['nll'])
    assert nlls[1] - nlls[0] == pytest.approx(8.0, abs=1e-6)  # log2(256) bits per dimension


def test_validation_without_gt_after_training_does_not_reuse_the_training_gt(tmp_path):
    model = SRFlowModel(make_opt(tmp_path, val={'heats': [0.0, 0.8], 'n_sample': 1}))
    train_steps(model, [1])
    model.validation(val_loader(1, with_gt=False), 2, None, save_img=True)
    assert not hasattr(model, 'gt') and model.metric_results == {}
    assert len(os.listdir(osp.join(model.opt['path']['visualization']))) == 1  # the SR images are still written


def test_validation_saves_one_image_per_temperature_and_sample(tmp_path):
    opt = make_opt(tmp_path, val={'heats': [0.0, 0.75], 'n_sample': 3})
    SRFlowModel(opt).validation(val_loader(1), 12, None, save_img=True)
    files = sorted(os.listdir(osp.join(opt['path']['visualization'], 'val0')))
    # tau = 0 is deterministic: one sample
    assert files == ['val0_12_t0.75_s0.png', 'val0_12_t0.75_s1.png', 'val0_12_t0.75_s2.png', 'val0_12_t0_s0.png']


def test_validation_samples_are_reproducible_and_differ_between_samples(tmp_path, device):
    model = SRFlowModel(make_opt(tmp_path, val={'heats': [0.9], 'n_sample': 2}, num_gpu=num_gpu(device)))
    model.validation(val_loader(1), 1, None, save_img=True)
    first = dict(model.metric_results)
    model.validation(val_loader(1), 2, None, save_img=True)
    assert model.metric_results == first
    folder = osp.join(model.opt['path']['visualization'], 'val0')
    import cv2
    s0, s1 = (cv2.imread(osp.join(folder, f'val0_2_t0.9_s{s}.png')) for s in (0, 1))
    assert (s0 != s1).any()


def test_best_metric_tracks_the_better_value_per_temperature(tmp_path):
    model = SRFlowModel(make_opt(tmp_path, val={'heats': [0.0], 'n_sample': 1}))
    model.validation(val_loader(1), 1, None, save_img=False)
    best_nll = model.metric_results['nll']
    model.best_metric_results['unitval']['nll']['val'] = best_nll - 1  # pretend an earlier, better NLL
    model.validation(val_loader(1), 2, None, save_img=False)
    assert model.best_metric_results['unitval']['nll'] == {'better': 'lower', 'val': best_nll - 1, 'iter': 1}
    assert model.best_metric_results['unitval']['psnr_t0']['iter'] == 2  # equal value: the newer iteration


def test_testing_writes_a_csv_per_dataset(tmp_path):
    opt = make_opt(tmp_path, is_train=False, val={'heats': [0.0, 0.8], 'n_sample': 2})
    SRFlowModel(opt).validation(val_loader(2, name='set5'), 'unit', None, save_img=True)
    with open(osp.join(opt['path']['results_root'], 'metrics_set5.csv')) as f:
        rows = list(csv.DictReader(f))
    assert [(r['image'], float(r['heat'])) for r in rows] == [('val0', 0.0), ('val0', 0.8), ('val1', 0.0),
                                                              ('val1', 0.8), ('mean', 0.0), ('mean', 0.8)]
    assert set(rows[0]) == {'image', 'heat', 'psnr', 'lr_psnr', 'nll'}
    mean_psnr = (float(rows[0]['psnr']) + float(rows[2]['psnr'])) / 2
    assert float(rows[4]['psnr']) == pytest.approx(mean_psnr, abs=1e-5)
    assert os.path.isfile(osp.join(opt['path']['visualization'], 'set5', 'val1_unit_t0.8_s1.png'))


def test_save_refuses_non_finite_weights_and_writes_nothing(tmp_path):
    opt = make_opt(tmp_path)
    model = SRFlowModel(opt)
    with torch.no_grad():
        next(model.get_bare_model(model.net_g).levels.parameters()).fill_(float('nan'))
    with pytest.raises(RuntimeError, match='levels.0'):
        model.save(0, 5)
    assert os.listdir(opt['path']['models']) == [] and os.listdir(opt['path']['training_states']) == []


def test_save_writes_network_and_training_state_with_skipped_steps(tmp_path):
    opt = make_opt(tmp_path)
    model = SRFlowModel(opt)
    train_steps(model, [1])
    model.skipped_steps = 2
    model.save(0, 1)
    assert os.listdir(opt['path']['models']) == ['net_g_1.pth']
    state = torch.load(osp.join(opt['path']['training_states'], '1.state'), weights_only=False)
    assert state['iter'] == 1 and state['skipped_steps'] == 2
    pretrained = osp.join(opt['path']['models'], 'net_g_1.pth')
    resumed = SRFlowModel(make_opt(tmp_path / 'r', path={'pretrain_network_g': pretrained}))
    resumed.resume_training(state)
    assert resumed.skipped_steps == 2


@pytest.mark.parametrize('name', ['train_SRFlow_x4', 'train_SRFlow_x8', 'train_SRFlow_CelebA_x8', 'test_SRFlow_x4',
                                  'test_SRFlow_x8', 'test_SRFlow_CelebA_x8'])
def test_shipped_option_files_pass_the_option_check_and_fit_the_network(name):
    import inspect

    import yaml

    from srflow_plugin.options_schema import check_options
    with open(osp.join(osp.dirname(osp.dirname(__file__)), 'options', f'{name}.yml')) as f:
        opt = yaml.safe_load(f)
    check_options(opt)
    net_opt = dict(opt['network_g'])
    assert net_opt.pop('type') == 'SRFlowNet' and opt['model_type'] == 'SRFlowModel'
    assert set(net_opt) <= set(inspect.signature(SRFlowNet).parameters)
    assert net_opt['scale'] == opt['scale']
    if name.startswith('train'):
        train_set = opt['datasets']['train']
        assert (train_set['gt_size'], train_set['use_hflip'], train_set['use_rot']) == (160, True, False)
        assert train_set['io_backend']['type'] == 'lmdb' and opt['val']['heats'] == [0.0, 0.5, 0.75, 1.0]
        assert opt['path']['pretrain_network_rrdb'] and opt['train']['train_rrdb_delay'] == 0.5
