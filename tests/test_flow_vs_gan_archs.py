"""The flow-versus-GAN study's networks: SRResNet (the SRGAN generator) and CouplingFlowNet with invertible
BatchNorm; and the matched-compute measurement (parameters, MACs per output pixel, receptive field)."""
import math

import pytest
import torch
from basicsr.archs import build_network
from torch import nn as nn

from srflow_plugin.archs import CouplingFlowNet, InvertibleBatchNorm, SRResNet
from srflow_plugin.archs.coupling_flow_arch import AffineCoupling, CouplingFlowStep
from srflow_plugin.tools import complexity
from helpers.flow_check import check_invertible_layer, jacobian_logabsdet, perturb_


def tiny_flow(**kwargs):
    config = dict(num_couplings=2, hidden_channels=8, hidden_layers=1, cond_channels=4, cond_hidden=4)
    config.update(kwargs)
    torch.manual_seed(0)
    return perturb_(CouplingFlowNet(**config), std=0.05).eval()


# ---------------------------------------------------------------- SRResNet
def test_srresnet_defaults_are_the_study_layer_list():
    net = SRResNet()
    convs = [m for m in net.modules() if isinstance(m, nn.Conv2d)]
    shapes = [(m.in_channels, m.out_channels, m.kernel_size[0]) for m in convs]
    assert shapes[0] == (3, 64, 9) and shapes[-1] == (64, 3, 9)
    assert shapes.count((64, 64, 3)) == 17
    assert shapes.count((64, 256, 3)) == 2 and len(shapes) == 21
    assert sum(isinstance(m, nn.BatchNorm2d) for m in net.modules()) == 17
    assert sum(isinstance(m, nn.PReLU) for m in net.modules()) == 1 + 8 + 2
    assert not any(isinstance(m, nn.LeakyReLU) for m in net.modules())


def test_srresnet_upscales_by_its_factor_and_builds_from_an_option_dict():
    net = build_network({'type': 'SRResNet', 'num_feat': 8, 'num_block': 1, 'upscale': 8})
    assert isinstance(net, SRResNet)
    assert net(torch.rand(2, 3, 5, 7)).shape == (2, 3, 40, 56)
    with pytest.raises(ValueError, match='upscale=3'):
        SRResNet(upscale=3)


# ---------------------------------------------------------------- invertible BatchNorm
def test_batchnorm_layer_is_exactly_invertible_in_eval_mode():
    layer = InvertibleBatchNorm(4)
    perturb_(layer)
    layer.running_var.uniform_(0.5, 2.0)
    check_invertible_layer(layer.eval(), torch.randn(2, 4, 3, 5))


def test_batchnorm_training_normalises_the_batch_and_returns_its_logdet():
    x = torch.randn(8, 3, 4, 4, dtype=torch.float64) * torch.tensor([1., 2., 3.]).view(1, 3, 1, 1) + 5
    layer = InvertibleBatchNorm(3).double().train()
    y, logdet = layer(x)
    assert torch.allclose(y.mean((0, 2, 3)), torch.zeros(3, dtype=torch.float64), atol=1e-10)
    assert torch.allclose(y.var((0, 2, 3), unbiased=False), torch.ones(3, dtype=torch.float64), atol=1e-4)
    var = x.var((0, 2, 3), unbiased=False)
    assert logdet.shape == (8, )
    assert logdet[0].item() == pytest.approx((-0.5 * torch.log(var + 1e-5)).sum().item() * 16, rel=1e-12)
    # running statistics move by momentum 0.1 from (0, 1)
    assert torch.allclose(layer.running_mean.view(-1), 0.1 * x.mean((0, 2, 3)))
    assert torch.allclose(layer.running_var.view(-1), 0.9 + 0.1 * var)


def test_batchnorm_eval_uses_running_statistics_not_the_batch():
    layer = InvertibleBatchNorm(2).eval()
    layer.running_mean.fill_(1.0)
    layer.running_var.fill_(4.0 - 1e-5)
    y, logdet = layer(torch.full((1, 2, 2, 2), 3.0))
    assert torch.allclose(y, torch.ones_like(y))
    assert logdet.item() == pytest.approx(2 * 4 * -math.log(2.0), rel=1e-6)


@pytest.mark.parametrize('name', ['coupling', 'step'])
def test_coupling_layers_are_exactly_invertible_with_exact_logdet(name):
    torch.manual_seed(0)
    layer = AffineCoupling(6, 3, 8, 1) if name == 'coupling' else CouplingFlowStep(6, 3, 8, 1)
    perturb_(layer).double().eval()
    u = torch.randn(1, 3, 4, 5, dtype=torch.float64)
    check_invertible_layer(layer, torch.randn(2, 6, 4, 5), layer.prepare_condition(u))


# ---------------------------------------------------------------- CouplingFlowNet
def test_flow_decode_inverts_encode_and_has_srflow_interface():
    net = tiny_flow()
    lq, gt = torch.rand(2, 3, 6, 4), torch.rand(2, 3, 24, 16)
    with torch.no_grad():
        latents, nll = net.encode(gt, lq)
        assert [tuple(t.shape[1:]) for t in latents] == net.latent_shapes(6, 4) == [(12, 12, 8)]
        assert (net.decode(lq, latents=latents) - gt).abs().max().item() < 1e-5
        cond = net.condition(lq, precompute=False)
        drawn = net.draw_latents(6, 4, 0.7, torch.Generator().manual_seed(3), batch=2)
        a = net.decode(cond=cond, latents=drawn)
        b = net.decode(cond=net.condition(lq), temperature=0.7, generator=torch.Generator().manual_seed(3))
    assert nll.shape == (2, ) and torch.isfinite(nll).all()
    assert torch.allclose(a, b, atol=1e-6)


def test_flow_nll_is_the_exact_change_of_variables_in_bits_per_dimension():
    net = tiny_flow().double()
    lq, gt = torch.rand(1, 3, 2, 2, dtype=torch.float64), torch.rand(1, 3, 8, 8, dtype=torch.float64)
    cond = net.condition(lq)
    latents, nll = net.encode(gt, cond=cond)
    log_det = jacobian_logabsdet(lambda x: net.encode(x, cond=cond)[0][0].flatten(), gt)
    log_prior = (-0.5 * (latents[0]**2 + math.log(2 * math.pi))).sum()
    assert nll.item() == pytest.approx((-(log_det + log_prior) / (math.log(2) * gt.numel())).item(), rel=1e-9)


def test_flow_defaults_are_16_couplings_with_batchnorm_prelu_and_no_actnorm():
    net = build_network({'type': 'CouplingFlowNet'})
    assert len(net.steps) == 16
    assert sum(isinstance(m, InvertibleBatchNorm) for m in net.modules()) == 16
    assert not any(type(m).__name__ == 'ActNorm' for m in net.modules())
    sub = net.steps[0].coupling.net
    convs = [m for m in sub.modules() if isinstance(m, nn.Conv2d)]
    assert [(c.in_channels, c.out_channels, c.kernel_size[0]) for c in convs] == [(6 + 8, 40, 3), (40, 40, 3),
                                                                                  (40, 12, 3)]
    assert sum(isinstance(m, nn.PReLU) for m in sub.modules()) == 2


def test_flow_wrong_latents_and_sizes_are_errors():
    net = tiny_flow()
    with pytest.raises(ValueError, match='not 4x the LR size'):
        net.encode(torch.rand(1, 3, 30, 16), torch.rand(1, 3, 6, 4))
    with pytest.raises(ValueError, match=r'\(12, 12, 8\)'):
        net.decode(torch.rand(1, 3, 6, 4), latents=[torch.zeros(1, 12, 8, 8)])


# ---------------------------------------------------------------- matched compute
def test_macs_per_output_pixel_of_the_study_networks_are_within_10_percent():
    gan = complexity.measure_network(SRResNet(), receptive_field=False)
    flow = complexity.measure_network(CouplingFlowNet(), receptive_field=False)
    # SRResNet by hand: (9*9*3*64 + 17*9*64*64 + 9*64*256) / 16 + 9*64*256 / 4 + 9*9*64*3 per HR pixel
    assert gan.macs_per_pixel == (81 * 3 * 64 + 17 * 9 * 64 * 64 + 9 * 64 * 256) / 16 + 9 * 64 * 256 / 4 + 81 * 64 * 3
    assert complexity.relative_gap(gan.macs_per_pixel, flow.macs_per_pixel) <= 0.10
    assert gan.params == sum(p.numel() for p in SRResNet().parameters())


def test_receptive_field_of_a_conv_stack_is_2k_plus_1_and_a_probe_too_small_is_a_lower_bound():
    net = nn.Sequential(*[nn.Conv2d(3, 3, 3, 1, 1) for _ in range(5)])
    figures = complexity.measure_network(net, max_probe=32)
    assert (figures.rf_input, figures.rf_exact, figures.rf_output) == (11, True, 11)
    assert figures.macs_per_pixel == 5 * 9 * 3 * 3
    small = complexity.measure_network(net, probe_size=8, max_probe=8)
    assert small.rf_exact is False and small.rf_input == 8


def test_each_coupling_widens_the_flow_field_by_its_convolutions():
    # 3 convolutions per sub-network at HR / 2: +2 * 3 * 2 = 12 HR pixels = 3 LR pixels per coupling (x4)
    one = complexity.measure_network(tiny_flow(num_couplings=1), max_probe=64)
    three = complexity.measure_network(tiny_flow(num_couplings=3), max_probe=64)
    assert three.rf_exact and three.rf_input - one.rf_input == 2 * 3


def test_complexity_command_reads_option_files_and_arch_specs(tmp_path, capsys):
    opt = tmp_path / 'o.yml'
    opt.write_text('network_g: {type: SRResNet, num_feat: 8, num_block: 1}\n'
                   'network_d: {type: VGGStyleDiscriminator, num_in_ch: 3, num_feat: 4, input_size: 128}\n')
    figures = complexity.main(['-opt', str(opt), '--arch', 'SRResNet num_feat=8 num_block=1', '--max-probe', '32'])
    out = capsys.readouterr().out
    assert 'per input pixel   whole input' in out and out.count('SRResNet') >= 2
    assert figures[0].macs_per_pixel == figures[2].macs_per_pixel and figures[1].rf_input is None
    with pytest.raises(ValueError, match='two image networks'):  # the 2nd is a discriminator
        complexity.main(['-opt', str(opt), '--match', '0.1', '--max-probe', '32'])
    assert complexity.cli(['--arch', 'NoSuchNet']) == 1
    assert "'NoSuchNet' is not a registered architecture" in capsys.readouterr().err
    assert complexity.cli(['--arch', 'SRResNet num_feat=8 num_block=1', '--arch', 'SRResNet num_feat=8 num_block=3',
                           '--match', '0.1', '--max-probe', '32']) == 1
    assert 'NOT within 10 %' in capsys.readouterr().out


@pytest.mark.parametrize('name, model_type, nets', [
    ('train_SRGAN_x4.yml', 'SRGANModel', {'network_g': SRResNet, 'network_d': 'VGGStyleDiscriminator'}),
    ('train_SRResNet_x4.yml', 'SRModel', {'network_g': SRResNet}),
    ('train_Flow_x4.yml', 'SRFlowModel', {'network_g': CouplingFlowNet})])
def test_study_option_files_build_their_networks(name, model_type, nets):
    from os import path as osp

    import yaml

    from srflow_plugin.options_schema import check_options
    with open(osp.join(osp.dirname(osp.dirname(osp.abspath(__file__))), 'options', 'flow_vs_gan', name)) as f:
        opt = yaml.safe_load(f)
    assert opt['model_type'] == model_type and opt['datasets']['train']['gt_size'] == 256
    for key, cls in nets.items():
        net = build_network(dict(opt[key]))
        assert type(net).__name__ == (cls if isinstance(cls, str) else cls.__name__)
    if model_type == 'SRFlowModel':
        check_options(opt)  # every train/val/path key is one SRFlowModel reads
    if model_type == 'SRGANModel':
        assert opt['train']['perceptual_opt']['criterion'] == 'l1' and opt['network_d']['input_size'] == 256
