"""Sampling at the compute floor: FlowStep.fast_inverse (folded sub-networks, no log-dets, one 1x1 convolution for
the inverse 1x1 conv and ActNorm) gives the layer-by-layer inverse's output, batched or one by one."""
from unittest import mock

import pytest
import torch

from srflow_plugin.archs.flow_layers import FlowStep
from helpers.train import briefly_trained_net

pytestmark = pytest.mark.usefixtures('single_thread')


def layer_by_layer():
    return mock.patch.object(FlowStep, 'fast_inverse', lambda step, y, cond=None: step.inverse(y, cond)[0])


@pytest.mark.parametrize('cond_channels', [None, 5], ids=['plain', 'conditional'])
def test_fast_inverse_equals_the_inverse_of_a_step_with_trained_like_weights(cond_channels):
    torch.manual_seed(0)
    step = FlowStep(12, cond_channels, hidden_channels=8)
    with torch.no_grad():
        for param in step.parameters():
            param.add_(0.1 * torch.randn_like(param))  # every ActNorm and ZeroConv2d away from its initial value
    step.eval()
    y, u = torch.randn(3, 12, 6, 6), torch.randn(1, 5, 6, 6)
    with torch.no_grad():
        cond = step.prepare_condition(u)
        torch.testing.assert_close(step.fast_inverse(y, cond), step.inverse(y, cond)[0], rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(step(step.fast_inverse(y, cond), cond)[0], y, rtol=1e-5, atol=1e-5)


def test_fast_inverse_in_train_mode_is_the_inverse_itself():
    step = FlowStep(12, 5, hidden_channels=8).train()
    y, u = torch.randn(2, 12, 4, 4), torch.randn(2, 5, 4, 4)
    with torch.no_grad():
        assert torch.equal(step.fast_inverse(y, u), step.inverse(y, u)[0])


def test_batched_samples_from_a_reused_condition_equal_re_encoding_each_sample_the_old_way():
    net, (_, lq) = briefly_trained_net()
    net.eval()
    lq = lq[:1]
    try:
        with torch.no_grad():
            latents = net.draw_latents(*lq.shape[-2:], 0.9, torch.Generator().manual_seed(3), batch=6)
            batched = net.decode(cond=net.condition(lq), latents=latents)
            with layer_by_layer():
                old = torch.cat([net.decode(lq, latents=[t[i:i + 1] for t in latents]) for i in range(6)])
    finally:
        net.train()
    assert old.std() > 0.05  # real images, not a constant
    torch.testing.assert_close(batched, old, rtol=0, atol=1e-5)
