"""FlowNLLLoss: bits per dimension, the dequantisation constant, weighting and reduction."""
import math

import pytest
import torch
from basicsr.losses import build_loss

import srflow_plugin.losses  # noqa: F401
from srflow_plugin.losses import FlowNLLLoss


def test_mean_of_the_per_sample_nll_without_quantization():
    loss = FlowNLLLoss()
    assert loss(torch.tensor([1.0, 2.0, 4.5])).item() == pytest.approx(2.5)


def test_quantization_adds_log2_q_bits_per_dimension():
    assert FlowNLLLoss(quantization=256).constant == pytest.approx(8.0)
    assert FlowNLLLoss(quantization=32).constant == pytest.approx(5.0)
    assert FlowNLLLoss(quantization=32)(torch.tensor([1.0, 2.0])).item() == pytest.approx(1.5 + 5.0)


def test_quantization_constant_is_three_times_the_release_per_pixel_constant():
    # the release added ln(q) * H * W nats to the NLL: log2(q) per pixel = log2(q) / 3 per dimension
    h, w, q = 16, 16, 32
    release_bits_per_dim = math.log(q) * h * w / (math.log(2) * 3 * h * w)
    assert FlowNLLLoss(quantization=q).constant == pytest.approx(3 * release_bits_per_dim)


def test_loss_weight_scales_everything_including_the_constant():
    loss = FlowNLLLoss(loss_weight=0.5, quantization=256)
    assert loss(torch.tensor([2.0, 4.0])).item() == pytest.approx(0.5 * (3.0 + 8.0))


def test_reductions_sum_and_none():
    nll = torch.tensor([1.0, 3.0])
    assert FlowNLLLoss(reduction='sum')(nll).item() == pytest.approx(4.0)
    assert FlowNLLLoss(reduction='none', quantization=2)(nll).tolist() == pytest.approx([2.0, 4.0])


def test_dequantize_adds_noise_within_half_a_bin_and_is_reproducible():
    gt = torch.full((2, 3, 8, 8), 0.5)
    loss = FlowNLLLoss(quantization=32)
    noisy = loss.dequantize(gt, generator=torch.Generator().manual_seed(1))
    again = loss.dequantize(gt, generator=torch.Generator().manual_seed(1))
    delta = noisy - gt
    assert torch.equal(noisy, again)
    assert delta.abs().max().item() <= 0.5 / 32
    assert delta.abs().max().item() > 0.4 / 32  # really spread over the bin
    assert abs(delta.mean().item()) < 0.002


def test_dequantize_without_quantization_returns_the_input():
    gt = torch.rand(1, 3, 4, 4)
    assert FlowNLLLoss().dequantize(gt) is gt


def test_gradient_is_one_over_batch_size_for_the_mean():
    nll = torch.tensor([1.0, 2.0, 3.0, 4.0], requires_grad=True)
    FlowNLLLoss(quantization=256)(nll).backward()
    assert nll.grad.tolist() == pytest.approx([0.25] * 4)


def test_built_from_an_option_dict_through_basicsr():
    loss = build_loss({'type': 'FlowNLLLoss', 'loss_weight': 2.0, 'quantization': 256})
    assert isinstance(loss, FlowNLLLoss)
    assert loss(torch.tensor([1.0])).item() == pytest.approx(18.0)


@pytest.mark.parametrize('kwargs, fragment', [({'reduction': 'median'}, 'reduction'),
                                              ({'quantization': 0}, 'quantization')])
def test_invalid_arguments_are_named(kwargs, fragment):
    with pytest.raises(ValueError, match=fragment):
        FlowNLLLoss(**kwargs)
