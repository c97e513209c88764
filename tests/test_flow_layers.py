"""Every flow layer: exact inverse, exact log-determinant, and its own specified behaviour."""
import math

import pytest
import torch
from torch.nn import functional as F

from srflow_plugin.archs.flow_layers import (ActNorm, AffineInjector, ConditionalAffineCoupling, FlowStep,
                                             InvertibleConv1x1, Split, Squeeze)
from helpers.flow_check import check_invertible_layer, perturb_

C, U, HIDDEN = 4, 5, 6  # channels of z, of the conditioning features, of the sub-networks


def _prepared(layer, u):
    return layer.prepare_condition(u) if hasattr(layer, 'prepare_condition') else None


LAYERS = {
    'squeeze': lambda: Squeeze(),
    'actnorm': lambda: ActNorm(C),
    'invconv': lambda: InvertibleConv1x1(C),
    'injector': lambda: AffineInjector(C, U, HIDDEN),
    'coupling': lambda: ConditionalAffineCoupling(C, U, HIDDEN),
    'plain_step': lambda: FlowStep(C),
    'conditional_step': lambda: FlowStep(C, U, HIDDEN),
    'split': lambda: Split(C),
}


@pytest.mark.parametrize('name', sorted(LAYERS))
def test_layer_is_exactly_invertible_with_exact_logdet(name, device):
    torch.manual_seed(0)
    layer = perturb_(LAYERS[name]()).double().eval().to(device)
    x = torch.randn(2, C, 4, 6, dtype=torch.float64).to(device)
    u = torch.randn(1, U, 4, 6, dtype=torch.float64).to(device)  # one LR condition broadcast over two samples
    check_invertible_layer(layer, x, _prepared(layer, u))


def test_squeeze_puts_pixel_dy_dx_of_channel_c_at_channel_c4_plus_2dy_plus_dx():
    x = torch.arange(2 * 3 * 4 * 6, dtype=torch.float32).view(2, 3, 4, 6)
    y, logdet = Squeeze()(x)
    for c, dy, dx, i, j in [(0, 0, 0, 0, 0), (1, 1, 0, 1, 2), (2, 1, 1, 1, 1), (2, 0, 1, 0, 2)]:
        assert y[1, c * 4 + dy * 2 + dx, i, j] == x[1, c, 2 * i + dy, 2 * j + dx]
    assert torch.equal(y, F.pixel_unshuffle(x, 2)) and torch.equal(logdet, torch.zeros(2))


def test_actnorm_initialises_from_first_training_batch_to_zero_mean_unit_std():
    x = torch.randn(8, C, 5, 5, dtype=torch.float64) * torch.tensor([1., 2., 3., 4.]).view(1, C, 1, 1) + 7
    layer = ActNorm(C).double().train()
    y, logdet = layer(x)
    assert layer.initialized
    assert torch.allclose(y.mean((0, 2, 3)), torch.zeros(C, dtype=torch.float64), atol=1e-10)
    assert torch.allclose(y.std((0, 2, 3), unbiased=False), torch.ones(C, dtype=torch.float64), atol=1e-5)
    assert torch.allclose(layer.bias.view(-1), -x.mean((0, 2, 3)))
    assert logdet[0].item() == pytest.approx(layer.logs.sum().item() * 25)
    # later batches do not re-initialise
    bias = layer.bias.clone()
    layer(x * 3)
    assert torch.equal(layer.bias, bias)


def test_actnorm_keeps_loaded_weights_and_never_initialises_in_eval_mode():
    x = torch.randn(4, C, 3, 3) + 5
    loaded = ActNorm(C).train()
    with torch.no_grad():
        loaded.bias.fill_(0.5)
    loaded(x)
    assert torch.equal(loaded.bias, torch.full((1, C, 1, 1), 0.5)) and torch.equal(loaded.logs, torch.zeros(1, C, 1, 1))
    fresh = ActNorm(C).eval()
    y, _ = fresh(x)
    assert torch.equal(y, x) and not fresh.initialized


def test_fresh_injector_and_coupling_scale_by_sigmoid_2():
    # zero-initialised output convolutions: every scale is sigmoid(2) + 1e-4 at the start of training
    u = torch.randn(1, U, 4, 6)
    x = torch.randn(1, C, 4, 6)
    expected = C * 4 * 6 * math.log(1 / (1 + math.exp(-2)) + 1e-4)
    injector = AffineInjector(C, U, HIDDEN).eval()
    _, logdet = injector(x, injector.prepare_condition(u))
    assert logdet.item() == pytest.approx(expected, rel=1e-6)
    coupling = ConditionalAffineCoupling(C, U, HIDDEN).eval()
    y, logdet = coupling(x, coupling.prepare_condition(u))
    assert logdet.item() == pytest.approx(expected / 2, rel=1e-6)
    assert torch.equal(y[:, :C // 2], x[:, :C // 2])


def test_split_standardises_second_half_with_prior_from_first_half():
    split = perturb_(Split(C)).double()
    x = torch.randn(2, C, 3, 3, dtype=torch.float64)
    y, logdet = split(x)
    h = split.conv(x[:, :2])
    mean, logs = h[:, 0::2], h[:, 1::2]
    assert torch.allclose(y[:, 2:], (x[:, 2:] - mean) / torch.exp(logs))
    # log-det + log N(eps; 0, I) is the Gaussian log-density of z2 under N(mean, exp(logs)^2)
    eps = y[:, 2:]
    log_density = torch.distributions.Normal(mean, torch.exp(logs)).log_prob(x[:, 2:]).flatten(1).sum(1)
    assert torch.allclose(logdet - 0.5 * (eps**2 + math.log(2 * math.pi)).flatten(1).sum(1), log_density)


class TestInvertibleConvCache:

    def _count_inversions(self, monkeypatch):
        calls = []
        real = torch.inverse
        monkeypatch.setattr(torch, 'inverse', lambda t: calls.append(1) or real(t))
        return calls

    def test_eval_mode_inverts_once_and_float64(self, monkeypatch):
        layer = InvertibleConv1x1(C).eval()
        calls = self._count_inversions(monkeypatch)
        y = torch.randn(2, C, 3, 3)
        for _ in range(3):
            x, _ = layer.inverse(y)
            layer(x)
        assert len(calls) == 1
        expected = torch.inverse(layer.weight.double()).float()
        assert torch.equal(layer.inverse_and_logabsdet()[0], expected)

    def test_refreshed_after_optimizer_step_and_load_state_dict(self, monkeypatch):
        layer = InvertibleConv1x1(C).eval()
        y = torch.randn(1, C, 3, 3)
        layer.inverse(y)
        layer.weight.grad = torch.randn(C, C)
        torch.optim.SGD(layer.parameters(), lr=0.1).step()
        x, _ = layer.inverse(y)
        assert torch.allclose(layer(x)[0], y, atol=1e-5)
        other = InvertibleConv1x1(C)
        layer.load_state_dict(other.state_dict())
        x, logdet = layer.inverse(y)
        assert torch.allclose(F.conv2d(x, other.weight.view(C, C, 1, 1)), y, atol=1e-5)
        assert logdet.item() == pytest.approx(-9 * torch.linalg.slogdet(other.weight)[1].item(), rel=1e-5)

    def test_refreshed_after_an_in_place_update_through_data(self):
        # BasicSR's EMA writes net_g_ema's weights through .data, which does not bump the tensor's version
        layer = InvertibleConv1x1(C).eval()
        y = torch.randn(1, C, 3, 3)
        layer.inverse(y)
        version = layer.weight._version
        layer.weight.data.mul_(0.9).add_(torch.eye(C), alpha=0.1)  # an EMA-like step, still invertible
        assert layer.weight._version == version
        x, logdet = layer.inverse(y)
        assert torch.allclose(F.conv2d(x, layer.weight.view(C, C, 1, 1)), y, atol=1e-5)
        assert logdet.item() == pytest.approx(-9 * torch.linalg.slogdet(layer.weight)[1].item(), rel=1e-5)

    def test_train_mode_recomputes_with_gradients(self, monkeypatch):
        layer = InvertibleConv1x1(C).train()
        calls = self._count_inversions(monkeypatch)
        y = torch.randn(1, C, 3, 3)
        layer.inverse(y)
        x, logdet = layer.inverse(y)
        assert len(calls) == 2
        logdet.sum().backward()
        assert layer.weight.grad is not None and layer.weight.grad.abs().sum() > 0
