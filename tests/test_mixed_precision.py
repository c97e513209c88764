"""Mixed precision (train.amp / val.amp): autocast for the encoder and the affine sub-networks only; the flow's
own arithmetic stays float32; NLL and training agree with float32."""
import pytest
import torch

from srflow_plugin.archs.flow_layers import FlowStep, Split
from srflow_plugin.models.srflow_model import SRFlowModel
from srflow_plugin.options_schema import OptionError
from helpers.devices import num_gpu, to_device
from helpers.train import briefly_trained_net, make_opt, smooth_batch, val_loader

pytestmark = pytest.mark.usefixtures('single_thread')


@pytest.mark.parametrize('precision', ['bf16', 'fp16'])
def test_nll_under_autocast_is_within_0_02_bits_of_float32_on_a_trained_network(precision, device):
    net, (gt, lq) = briefly_trained_net()
    net, gt, lq = to_device(device, net, gt, lq)
    net.eval()
    try:
        with torch.no_grad():
            _, nll_fp32 = net.encode(gt, lq)
            with net.autocast(precision):
                latents, nll_amp = net.encode(gt, lq)
    finally:
        net.train()
    assert nll_amp.dtype == torch.float32 and all(t.dtype == torch.float32 for t in latents)
    assert (nll_amp - nll_fp32).abs().max().item() < 0.02
    assert not torch.equal(nll_amp, nll_fp32)  # autocast really ran in lower precision


def test_only_the_sub_networks_run_in_lower_precision(device):
    torch.manual_seed(0)
    step, split = FlowStep(8, cond_channels=4, hidden_channels=8).to(device), Split(8).to(device)
    seen = {}

    def record(name, tensor):
        seen[name] = (tensor[0] if isinstance(tensor, tuple) else tensor).dtype

    for name, module in [('invconv', step.invconv), ('subnet_out', step.coupling.net.conv_out),
                         ('split_prior', split.conv)]:
        module.register_forward_hook(lambda m, i, o, name=name: record(name, o))
    # the sub-network's hidden convolution, before its ActNorm
    step.coupling.net.conv_hidden.actnorm.register_forward_pre_hook(lambda m, i: record('subnet_hidden', i))
    x, u = torch.randn(2, 8, 6, 6).to(device), torch.randn(2, 4, 6, 6).to(device)
    with torch.autocast(device.type, dtype=torch.bfloat16):
        y, logdet = step(x, u)
        z, split_logdet = split(y)
    assert seen['subnet_hidden'] == torch.bfloat16
    assert seen['invconv'] == seen['split_prior'] == torch.float32
    assert seen['subnet_out'] == torch.float32  # ZeroConv2d's scale brings the output back to float32
    assert y.dtype == z.dtype == logdet.dtype == split_logdet.dtype == torch.float32


def train_and_measure(tmp_path, amp, device, steps=50):
    """The training loss (bits/dim) averaged over the last 10 of ``steps`` steps on smooth images."""
    torch.manual_seed(0)
    model = SRFlowModel(make_opt(tmp_path, train={'amp': amp, 'total_iter': steps, 'scheduler': None,
                                                  'optim_g': {'type': 'Adam', 'lr': 5e-4}}, num_gpu=num_gpu(device)))
    losses = []
    for it in range(1, steps + 1):
        gt, lq = smooth_batch(4, 32, seed=it % 5)
        model.feed_data({'lq': lq, 'gt': gt})
        model.optimize_parameters(it)
        losses.append(float(model.log_dict['l_nll']))
    return sum(losses[-10:]) / 10, losses[0], model


def test_50_bf16_training_steps_reach_the_float32_loss_within_0_05_bits(tmp_path, device):
    nll_fp32, first_fp32, _ = train_and_measure(tmp_path / 'fp32', None, device)
    nll_bf16, first_bf16, model = train_and_measure(tmp_path / 'bf16', 'bf16', device)
    assert model.skipped_steps == 0
    assert first_fp32 - nll_fp32 > 1.0  # it learned (from about -0.7 to about -1.8 bits/dim)
    assert abs(nll_bf16 - nll_fp32) < 0.05, (nll_bf16, nll_fp32)


def test_fp16_training_uses_a_gradient_scaler_and_the_nan_skip_stays_in_charge(tmp_path, device):
    model = SRFlowModel(make_opt(tmp_path, train={'amp': 'fp16'}, num_gpu=num_gpu(device)))
    assert model.grad_scaler.is_enabled()
    gt, lq = smooth_batch(2, 32, seed=1)
    model.feed_data({'lq': lq, 'gt': gt})
    model.optimize_parameters(1)
    assert model.log_dict['grad_norm'] > 0 and model.skipped_steps == 0  # unscaled before clipping/checking
    gt[0, 0, 0, 0] = float('nan')
    model.feed_data({'lq': lq, 'gt': gt})
    before = {k: v.clone() for k, v in model.get_bare_model(model.net_g).state_dict().items()}
    model.optimize_parameters(2)
    assert model.skipped_steps == 1
    after = model.get_bare_model(model.net_g).state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)


def test_validation_with_val_amp_gives_the_float32_metrics(tmp_path, device):
    results = []
    for amp in (None, 'bf16'):
        torch.manual_seed(0)
        model = SRFlowModel(make_opt(tmp_path / str(amp), val={'heats': [0.0, 0.8], 'n_sample': 2, 'amp': amp},
                                     num_gpu=num_gpu(device)))
        model.validation(val_loader(2), 1, None, save_img=False)
        results.append(model.metric_results)
    assert results[0].keys() == results[1].keys()
    assert results[1]['nll'] == pytest.approx(results[0]['nll'], abs=0.02)
    for key in results[0]:
        if key.startswith('psnr'):
            assert results[1][key] == pytest.approx(results[0][key], abs=0.1)


@pytest.mark.parametrize('section', ['train', 'val'])
def test_unknown_precision_is_an_error_naming_the_option(tmp_path, section):
    with pytest.raises(OptionError, match=rf"'{section}\.amp' = 'fp8' \(str\): must be one of bf16, fp16"):
        SRFlowModel(make_opt(tmp_path, **{section: {'amp': 'fp8'}}))
