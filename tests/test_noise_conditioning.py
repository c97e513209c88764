"""Noise conditioning: the flow conditioned on the std of Gaussian noise added to the HR image (NCSR / SoftFlow)."""
import math

import pytest
import torch

from srflow_plugin.archs import SRFlowNet
from srflow_plugin.models import SRFlowModel
from srflow_plugin.options_schema import OptionError
from helpers.flow_check import check_nll_is_change_of_variables, perturb_
from helpers.release import converted_release_net, release_fixture
from helpers.train import make_opt, smooth_batch

NOISE_KEYS = ['noise_embedding.gain', 'noise_embedding.bias']
TINY = dict(scale=4, num_feat=8, num_block=2, num_grow_ch=4, tap_blocks=(1, 0), flow_steps=2, plain_steps=1,
            hidden_channels=8)


def conditioned_net():
    torch.manual_seed(0)
    return perturb_(SRFlowNet(noise_conditioning=True, **TINY), std=0.05).eval().double()


def test_off_by_default_the_network_is_the_release_one():
    assert SRFlowNet(**TINY).noise_embedding is None
    plain_keys = set(SRFlowNet(**TINY).state_dict())
    assert set(SRFlowNet(noise_conditioning=True, **TINY).state_dict()) - plain_keys == set(NOISE_KEYS)


def test_decode_inverts_encode_at_a_noise_level():
    net = conditioned_net()
    lq = torch.rand(2, 3, 4, 6, dtype=torch.float64)
    gt = torch.rand(2, 3, 16, 24, dtype=torch.float64)
    std = torch.tensor([0.01, 0.04], dtype=torch.float64)
    with torch.no_grad():
        cond = net.condition(lq, noise_std=std)
        latents, nll = net.encode(gt, cond=cond)
        assert (net.decode(cond=cond, latents=latents) - gt).abs().max().item() < 1e-10
        # the level is a real condition: other levels, other latents and likelihood
        other_latents, other_nll = net.encode(gt, lq, noise_std=std.flip(0))
    assert (other_latents[-1] - latents[-1]).abs().max().item() > 1e-3
    assert (other_nll - nll).abs().min().item() > 1e-4


def test_nll_is_the_exact_change_of_variables_at_a_noise_level():
    net = conditioned_net()
    lq = torch.rand(1, 3, 2, 2, dtype=torch.float64)
    gt = torch.rand(1, 3, 8, 8, dtype=torch.float64)
    check_nll_is_change_of_variables(net, gt, net.condition(lq, noise_std=0.03))


def test_level_zero_is_a_no_op_for_the_released_configuration():
    """The release's tiny x4 network (fixture) with a noise embedding added, whatever its weights: at level 0 its
    latents, NLL and samples are the plain network's, bit for bit, and still the release's own numbers."""
    data = release_fixture(4)
    plain = converted_release_net(data)
    config = data['config']
    conditioned = SRFlowNet(scale=plain.scale, num_feat=config['nf'], num_block=config['nb'],
                            num_grow_ch=config['gc'], tap_blocks=config['stack_blocks'], flow_steps=config['K'],
                            plain_steps=config['additional_flow_no_affine'],
                            hidden_channels=config['coupling_hidden_channels'], trunk_skip='trunk',
                            noise_conditioning=True).eval()
    missing = conditioned.load_state_dict(plain.state_dict(), strict=False).missing_keys
    assert sorted(missing) == sorted(NOISE_KEYS)
    perturb_(conditioned.noise_embedding, std=0.5)
    gt, lq = data['gt'], data['lq']
    zeros = torch.zeros(lq.shape[0])
    with torch.no_grad():
        plain_latents, plain_nll = plain.encode(gt, lq)
        for std in (None, zeros):
            latents, nll = conditioned.encode(gt, lq, noise_std=std)
            assert torch.equal(nll, plain_nll)
            assert all(torch.equal(a, b) for a, b in zip(latents, plain_latents))
        sample = conditioned.decode(cond=conditioned.condition(lq, noise_std=zeros), latents=data['decode']['eps'])
        assert torch.equal(sample, plain.decode(lq, latents=data['decode']['eps']))
        assert torch.allclose(nll * 3, data['encode']['nll_bits_per_pixel'], atol=1e-4)
        # and a non-zero level does change the result
        assert not torch.equal(conditioned.encode(gt, lq, noise_std=zeros + 0.02)[1], plain_nll)


def test_noise_std_needs_a_conditioned_network():
    with pytest.raises(ValueError, match='without noise_conditioning'):
        SRFlowNet(**TINY).condition(torch.rand(1, 3, 4, 4), noise_std=0.1)


def test_model_trains_the_noise_embedding(tmp_path):
    opt = make_opt(tmp_path, train={'noise_conditioning': {'max_std': 0.05}, 'guard': {'enabled': False}})
    opt['network_g']['noise_conditioning'] = True
    model = SRFlowModel(opt)
    gt, lq = smooth_batch(2, 16, seed=0)
    for it in (1, 2):
        model.feed_data({'lq': lq, 'gt': gt})
        model.optimize_parameters(it)
    embedding = model.net_g.noise_embedding
    assert embedding.gain.abs().sum() > 0 and embedding.bias.abs().sum() > 0  # gradients reached it
    assert math.isfinite(model.log_dict['l_nll'])


@pytest.mark.parametrize('noise, network, message', [
    ({'max_std': 0.05}, False, 'network_g.noise_conditioning: true'),
    ({}, True, "'train.noise_conditioning.max_std' is required"),
    ({'max_std': 2}, True, "'train.noise_conditioning.max_std' = 2"),
    ({'max_std': 0.05, 'min_std': 0}, True, "Unknown option 'train.noise_conditioning.min_std'"),
])
def test_bad_noise_options_are_named(tmp_path, noise, network, message):
    opt = make_opt(tmp_path, train={'noise_conditioning': noise})
    opt['network_g']['noise_conditioning'] = network
    with pytest.raises(OptionError, match=message):
        SRFlowModel(opt)
