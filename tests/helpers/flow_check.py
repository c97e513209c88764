"""The one check every invertible flow layer goes through (import it from tests)."""
import math

import pytest
import torch


def perturb_(module, std=0.1, seed=0):
    """Adds noise to every parameter so that zero-initialised layers are not the identity."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.add_(torch.randn(p.shape, generator=generator, dtype=p.dtype) * std)
    return module


def jacobian_logabsdet(fn, x):
    """log|det J| of fn at x (one sample), from the autograd Jacobian of the flattened map."""
    jac = torch.autograd.functional.jacobian(lambda v: fn(v.view_as(x)).flatten(), x.flatten())
    return torch.linalg.slogdet(jac)[1]


def check_invertible_layer(layer, x, cond=None):
    """Asserts the layer contract on x (float64, batch 1 for the Jacobian): inverse(forward(x)) == x within 1e-5,
    the two log-dets cancel, and forward's log-det equals log|det J| within a relative 1e-6.

    Returns (y, logdet) of the forward pass for further checks.
    """
    layer = layer.double()
    x = x.double()
    y, logdet = layer(x, cond)
    assert y.shape[0] == x.shape[0] and y[0].numel() == x[0].numel() and logdet.shape == (x.shape[0], )
    x_back, inverse_logdet = layer.inverse(y, cond)
    assert (x_back - x).abs().max().item() <= 1e-5
    assert torch.allclose(logdet + inverse_logdet, torch.zeros_like(logdet), atol=1e-9)
    expected = jacobian_logabsdet(lambda v: layer(v, cond)[0], x[:1])
    assert abs(logdet[0].item() - expected.item()) <= 1e-6 * max(1.0, abs(expected.item()))
    return y, logdet


def check_nll_is_change_of_variables(net, gt, cond):
    """Asserts that ``net.encode(gt, cond=cond)``'s NLL (bits per dimension) is -(log|det J| + log N(z; 0, I)) /
    (ln 2 * D) with the Jacobian of gt -> latents computed by autograd (float64, batch 1), to a relative 1e-9."""
    latents, nll = net.encode(gt, cond=cond)
    flat = lambda x: torch.cat([t.flatten() for t in net.encode(x, cond=cond)[0]])  # noqa: E731
    log_det = jacobian_logabsdet(flat, gt)
    z = torch.cat([t.flatten() for t in latents])
    log_prior = (-0.5 * (z**2 + math.log(2 * math.pi))).sum()
    expected = -(log_det + log_prior) / (math.log(2) * gt.numel())
    assert nll.item() == pytest.approx(expected.item(), rel=1e-9)
