"""The flow contracts as base classes: every flow layer is an InvertibleLayer, every flow network a
ConditionalFlowNet whose shared encode/decode/draw_latents/forward serve SRFlowNet and CouplingFlowNet alike."""
import math

import pytest
import torch

from srflow_plugin.archs import CouplingFlowNet, SRFlowNet, SRResNet, coupling_flow_arch, flow_layers
from srflow_plugin.archs.flow_base import ConditionalFlowNet, InvertibleLayer, standard_normal_logp


def _tiny_srflow():
    return SRFlowNet(scale=2, num_feat=8, num_block=2, num_grow_ch=4, tap_blocks=(0, 1), flow_steps=1,
                     plain_steps=1, hidden_channels=8)


def _tiny_coupling():
    return CouplingFlowNet(scale=2, num_couplings=2, hidden_channels=8)


def test_the_base_classes_cannot_be_built_without_the_contract_methods():
    with pytest.raises(TypeError, match='abstract'):
        InvertibleLayer()
    with pytest.raises(TypeError, match='abstract'):
        ConditionalFlowNet()

    class HalfLayer(InvertibleLayer):  # forward without inverse

        def forward(self, x, cond=None):
            return x, x.new_zeros(x.shape[0])

    with pytest.raises(TypeError, match='inverse'):
        HalfLayer()


def test_every_flow_layer_of_the_package_is_an_invertible_layer():
    layers = {
        flow_layers.Squeeze, flow_layers.ActNorm, flow_layers.InvertibleConv1x1, flow_layers.AffineInjector,
        flow_layers.ConditionalAffineCoupling, flow_layers.FlowStep, flow_layers.Split,
        coupling_flow_arch.InvertibleBatchNorm, coupling_flow_arch.AffineCoupling, coupling_flow_arch.CouplingFlowStep
    }
    assert all(issubclass(layer, InvertibleLayer) for layer in layers)
    # both couplings are one coupling (couple/uncouple) with different sub-networks
    assert issubclass(coupling_flow_arch.AffineCoupling, flow_layers.AffineCouplingLayer)
    assert issubclass(flow_layers.ConditionalAffineCoupling, flow_layers.AffineCouplingLayer)


def test_both_flow_networks_are_conditional_flows_and_a_plain_sr_network_is_not():
    for net in (_tiny_srflow(), _tiny_coupling()):
        assert isinstance(net, ConditionalFlowNet)
        for name in ('encode', 'decode', 'draw_latents', 'forward', '_check_image', '_resolve_condition'):
            assert getattr(type(net), name) is getattr(ConditionalFlowNet, name)  # inherited, not re-bound
    assert not isinstance(SRResNet(num_feat=8, num_block=1), ConditionalFlowNet)


@pytest.mark.parametrize('make', [_tiny_srflow, _tiny_coupling], ids=['SRFlowNet', 'CouplingFlowNet'])
def test_shared_encode_is_the_change_of_variables_in_bits_per_dimension(make):
    torch.manual_seed(0)
    net = make().eval()
    lq, gt = torch.rand(2, 3, 6, 6), torch.rand(2, 3, 12, 12)
    with torch.no_grad():
        cond = net.condition(lq)
        latents, logdet = net._flow_forward(gt, cond)
        _, nll = net.encode(gt, cond=cond)
        by_hand = -(logdet + sum(standard_normal_logp(z) for z in latents)) / (math.log(2.0) * 3 * 12 * 12)
        assert torch.equal(nll, by_hand)
        torch.testing.assert_close(net.decode(cond=cond, latents=latents), gt, rtol=0, atol=1e-5)
        assert torch.equal(net(lq, gt)[1], nll)  # the DDP entry


@pytest.mark.parametrize('make', [_tiny_srflow, _tiny_coupling], ids=['SRFlowNet', 'CouplingFlowNet'])
def test_shared_input_checks_name_the_fault(make):
    net = make().eval()
    lq = torch.rand(2, 3, 6, 6)
    cond = net.condition(lq)
    with pytest.raises(ValueError, match=r'gt must be \[B, 3, H, W\], got shape \(2, 1, 12, 12\)'):
        net.encode(torch.rand(2, 1, 12, 12), cond=cond)
    with pytest.raises(ValueError, match=r'is not 2x the LR size \(6, 6\) \(expected 12x12\)'):
        net.encode(torch.rand(2, 3, 12, 10), cond=cond)
    with pytest.raises(ValueError, match='give the LR images'):
        net.decode()
    with pytest.raises(ValueError, match=r'latents have batch sizes \[3\]; the condition has batch 2'):
        net.decode(cond=cond, latents=net.draw_latents(6, 6, batch=3))
    with pytest.raises(ValueError, match='temperature must be >= 0'):
        net.decode(cond=cond, temperature=-0.1)
    with pytest.raises(ValueError, match='give precompute to condition'):
        net.encode(torch.rand(2, 3, 12, 12), cond=cond, precompute=True)
    net.encode(torch.rand(2, 3, 12, 12), cond=cond, precompute=None)  # None stands for not given


def test_draw_latents_gives_one_tensor_per_latent_shape_at_the_temperature():
    net = _tiny_srflow()
    latents = net.draw_latents(5, 7, temperature=0.0, batch=2)
    assert [tuple(z.shape) for z in latents] == [(2, ) + shape for shape in net.latent_shapes(5, 7)]
    assert all(torch.equal(z, torch.zeros_like(z)) for z in latents)
    first = net.draw_latents(5, 7, 0.5, torch.Generator().manual_seed(3))
    again = net.draw_latents(5, 7, 0.5, torch.Generator().manual_seed(3))
    assert all(torch.equal(a, b) for a, b in zip(first, again))
