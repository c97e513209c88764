"""SRFlowNet: configuration, exact likelihood, sampling API, LR reuse, padding and input errors."""
import math

import pytest
import torch
from basicsr.archs import build_network
from basicsr.archs.rrdbnet_arch import RRDBNet

from srflow_plugin.archs import RELEASED_CONFIGS, SRFlowNet, SRFlowRRDBNet
from helpers.flow_check import check_nll_is_change_of_variables, perturb_


def tiny_net(scale=4, **kwargs):
    config = dict(scale=scale, num_feat=8, num_block=2, num_grow_ch=4, tap_blocks=(1, 0), flow_steps=2,
                  plain_steps=1, hidden_channels=8)
    config.update(kwargs)
    torch.manual_seed(0)
    return perturb_(SRFlowNet(**config), std=0.05).eval()


@pytest.mark.parametrize('name, total, encoder', [('SRFlow_DF2K_4X', 39_265_235, 16_697_987),
                                                  ('SRFlow_DF2K_8X', 50_545_315, 16_734_915),
                                                  ('SRFlow_CelebA_8X', 39_753_955, 5_943_555)])
def test_released_configurations_have_the_release_parameter_counts(name, total, encoder):
    net = SRFlowNet(**RELEASED_CONFIGS[name])
    assert sum(p.numel() for p in net.parameters()) == total
    assert sum(p.numel() for p in net.encoder.parameters()) == encoder


def test_built_from_an_option_dict_through_basicsr_registry():
    net = build_network({'type': 'SRFlowNet', 'scale': 2, 'num_feat': 8, 'num_block': 1, 'num_grow_ch': 4,
                         'tap_blocks': [0], 'flow_steps': 1, 'hidden_channels': 8})
    assert isinstance(net, SRFlowNet) and net.scale == 2 and len(net.levels) == 2


@pytest.mark.parametrize('scale, shapes', [(2, [(48, 4, 6)]), (4, [(6, 16, 24), (96, 4, 6)]),
                                           (8, [(6, 32, 48), (12, 16, 24), (192, 4, 6)])])
def test_latent_shapes_per_scale(scale, shapes):
    # x2: no split; x4: one split after level 1; x8: splits after levels 1 and 2 (reference section 2)
    assert tiny_net(scale).latent_shapes(8, 12) == shapes


@pytest.mark.parametrize('scale', [2, 4, 8])
def test_decode_inverts_encode(scale, device):
    net = tiny_net(scale).to(device)
    lq = torch.rand(2, 3, 6, 4).to(device)
    gt = torch.rand(2, 3, 6 * scale, 4 * scale).to(device)
    with torch.no_grad():
        latents, nll = net.encode(gt, lq)
        assert [tuple(t.shape[1:]) for t in latents] == net.latent_shapes(6, 4)
        assert (net.decode(lq, latents=latents) - gt).abs().max().item() < 1e-4
    assert nll.shape == (2, ) and torch.isfinite(nll).all()


def test_nll_is_the_exact_change_of_variables_in_bits_per_dimension(device):
    net = tiny_net(4).double().to(device)
    lq = torch.rand(1, 3, 2, 2, dtype=torch.float64).to(device)
    gt = torch.rand(1, 3, 8, 8, dtype=torch.float64).to(device)
    check_nll_is_change_of_variables(net, gt, net.condition(lq))


def test_condition_is_computed_once_for_many_samples(monkeypatch):
    net = tiny_net(4)
    calls = []
    features = net.encoder.features
    monkeypatch.setattr(net.encoder, 'features', lambda *a, **k: calls.append(1) or features(*a, **k))
    lq = torch.rand(1, 3, 4, 4)
    with torch.no_grad():
        cond = net.condition(lq)
        samples = [net.decode(cond=cond, temperature=0.8, generator=torch.Generator().manual_seed(i)) for i in range(4)]
        direct = net.decode(lq, temperature=0.8, generator=torch.Generator().manual_seed(3))
    assert len(calls) == 2  # one for the shared condition, one for the direct call
    assert torch.allclose(samples[3], direct, atol=1e-6)
    assert (samples[0] - samples[1]).abs().max() > 1e-3


def test_condition_without_precomputed_steps_gives_the_same_results():
    net = tiny_net(4)
    lq, gt = torch.rand(2, 3, 4, 6), torch.rand(2, 3, 16, 24)
    latents = [torch.randn(2, *shape) for shape in net.latent_shapes(4, 6)]
    with torch.no_grad():
        stored, lazy = net.condition(lq), net.condition(lq, precompute=False)
        assert torch.isfinite(net.decode(cond=stored, latents=latents)).all()
        assert all(isinstance(c, list) for c in stored.level_conds)
        assert all(torch.is_tensor(c) for c in lazy.level_conds)  # the level features only
        for cond in (lazy, None):  # None: a one-shot call, which prepares each step when it runs
            assert torch.allclose(net.decode(lq, latents=latents, cond=cond), net.decode(cond=stored, latents=latents),
                                  atol=1e-5)
            (eps, nll), (eps_ref, nll_ref) = net.encode(gt, lq, cond=cond), net.encode(gt, cond=stored)
            assert torch.allclose(nll, nll_ref, atol=1e-6)
            assert all(torch.allclose(a, b, atol=1e-5) for a, b in zip(eps, eps_ref))


def test_batch_one_condition_broadcasts_over_a_batch_of_latents():
    net = tiny_net(4)
    lq = torch.rand(1, 3, 4, 4)
    with torch.no_grad():
        cond = net.condition(lq)
        latents = [torch.randn(3, *shape) for shape in net.latent_shapes(4, 4)]
        batch = net.decode(cond=cond, latents=latents)
        single = net.decode(cond=cond, latents=[t[2:3] for t in latents])
    assert batch.shape == (3, 3, 16, 16)
    assert torch.allclose(batch[2:3], single, atol=1e-5)


def test_sampling_is_reproducible_by_generator_and_finite_for_temperatures_0_to_1_2(device):
    net = tiny_net(4).to(device)
    lq = torch.rand(1, 3, 4, 6).to(device)
    with torch.no_grad():  # the generator is a CPU one on every device: the latents are drawn there
        for t in [0.0, 0.4, 0.8, 1.0, 1.2]:
            a = net.decode(lq, temperature=t, generator=torch.Generator().manual_seed(5))
            b = net.decode(lq, temperature=t, generator=torch.Generator().manual_seed(5))
            assert torch.equal(a, b) and torch.isfinite(a).all() and a.shape == (1, 3, 16, 24)
        zero = net.decode(lq, temperature=0.0)
        mean = net.decode(lq, latents=[torch.zeros(1, *s, device=device) for s in net.latent_shapes(4, 6)])
    assert torch.equal(zero, mean)


def test_negative_temperature_is_an_error():
    with pytest.raises(ValueError, match='temperature'):
        tiny_net(4).decode(torch.rand(1, 3, 4, 4), temperature=-0.1)


def test_odd_lr_is_reflect_padded_and_output_cropped_back():
    net = tiny_net(4)
    lq = torch.rand(1, 3, 5, 7)
    padded = torch.nn.functional.pad(lq, (0, 1, 0, 1), mode='reflect')
    with torch.no_grad():
        latents = [torch.randn(1, *s) for s in net.latent_shapes(5, 7)]
        assert net.latent_shapes(5, 7) == net.latent_shapes(6, 8)
        sr = net.decode(lq, latents=latents)
        full = net.decode(padded, latents=latents)
        assert sr.shape == (1, 3, 20, 28) and torch.equal(sr, full[..., :20, :28])
        gt = torch.rand(1, 3, 20, 28)
        rec = net.decode(lq, latents=net.encode(gt, lq)[0])
    assert (rec - gt).abs().max() < 1e-4


@pytest.mark.parametrize('gt_shape, lq_shape, message', [
    ((1, 3, 16, 20), (1, 3, 4, 4), r'\(1, 3, 16, 20\).*4x the LR size \(4, 4\)'),
    ((1, 1, 16, 16), (1, 3, 4, 4), r'gt must be \[B, 3, H, W\], got shape \(1, 1, 16, 16\)'),
    ((1, 3, 16, 16), (1, 4, 4, 4), r'lq must be \[B, 3, H, W\], got shape \(1, 4, 4, 4\)'),
])
def test_mismatched_inputs_are_errors_naming_the_shapes(gt_shape, lq_shape, message):
    with pytest.raises(ValueError, match=message):
        tiny_net(4).encode(torch.rand(gt_shape), torch.rand(lq_shape))


def test_latents_of_the_wrong_shape_are_an_error():
    with pytest.raises(ValueError, match=r'do not fit this LR size'):
        tiny_net(4).decode(torch.rand(1, 3, 4, 4), latents=[torch.zeros(1, 6, 8, 8), torch.zeros(1, 96, 2, 3)])


def test_encoder_equals_basicsr_rrdbnet_at_x4_with_the_same_weights():
    torch.manual_seed(1)
    ours = SRFlowRRDBNet(scale=4, num_feat=8, num_block=2, num_grow_ch=4).eval()
    theirs = RRDBNet(3, 3, scale=4, num_feat=8, num_block=2, num_grow_ch=4).eval()
    theirs.load_state_dict(ours.state_dict())
    x = torch.rand(1, 3, 5, 6)
    with torch.no_grad():
        assert torch.allclose(ours(x), theirs(x), atol=1e-6)


@pytest.mark.parametrize('scale', [2, 8])
def test_encoder_is_a_plain_sr_network_at_x2_and_x8(scale):
    net = build_network({'type': 'SRFlowRRDBNet', 'num_in_ch': 3, 'num_out_ch': 3, 'scale': scale, 'num_feat': 8,
                         'num_block': 1, 'num_grow_ch': 4})
    assert net(torch.rand(1, 3, 5, 6)).shape == (1, 3, 5 * scale, 6 * scale)
    assert hasattr(net, f'conv_up{int(math.log2(scale))}')


def test_unknown_trunk_skip_and_out_of_range_taps_are_errors():
    with pytest.raises(ValueError, match="trunk_skip must be one of"):
        SRFlowRRDBNet(trunk_skip='first')
    with pytest.raises(ValueError, match=r'tap_blocks \[0, 5\].*0\.\.1'):
        SRFlowNet(num_feat=8, num_block=2, num_grow_ch=4, tap_blocks=(0, 5))
