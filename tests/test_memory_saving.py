"""Memory-saving backprop (train.memory_saving): the flow keeps no activations for backward, the encoder's RRDB
blocks are checkpointed, and every gradient equals the plain path's."""
import socket
from os import path as osp

import pytest
import torch
import torch.multiprocessing as mp

from srflow_plugin.archs.flow_layers import FlowStep, Split, Squeeze
from srflow_plugin.archs.invertible_backprop import run_invertible_chain
from srflow_plugin.models.srflow_model import SRFlowModel
from helpers.devices import num_gpu, to_device
from helpers.train import briefly_trained_net, ddp_train_worker, make_opt

pytestmark = pytest.mark.usefixtures('single_thread')


@pytest.fixture(scope='module')
def trained():
    return briefly_trained_net()


def gradients(net, gt, lq, memory_saving):
    net.memory_saving = memory_saving
    net.zero_grad(set_to_none=True)
    nll = net.encode(gt, lq)[1].mean()
    nll.backward()
    net.memory_saving = False
    return nll.item(), {name: p.grad.clone() for name, p in net.named_parameters() if p.grad is not None}


def relative_differences(grads, reference):
    return {name: ((grads[name] - g).norm() / g.norm()).item() for name, g in reference.items() if g.norm() > 0}


def test_every_parameter_gradient_equals_the_plain_path_on_a_trained_network(trained, device):
    net, (gt, lq) = trained
    net, gt, lq = to_device(device, net, gt, lq)
    nll_plain, plain = gradients(net, gt, lq, memory_saving=False)
    nll_saving, saving = gradients(net, gt, lq, memory_saving=True)
    assert nll_saving == nll_plain  # the forward pass is the same computation
    assert saving.keys() == plain.keys()
    assert len(plain) == len(list(net.parameters())) - 3 * 2  # all but the unused SR head (conv_up2/hr/last)
    differences = relative_differences(saving, plain)
    assert max(differences.values()) < 1e-4, max(differences.items(), key=lambda item: item[1])


def test_with_the_encoder_frozen_only_the_flow_gets_the_same_gradients(trained, device):
    net, (gt, lq) = trained
    net, gt, lq = to_device(device, net, gt, lq)
    net.encoder.requires_grad_(False)
    net.encoder.eval()
    try:
        _, plain = gradients(net, gt, lq, memory_saving=False)
        _, saving = gradients(net, gt, lq, memory_saving=True)
    finally:
        net.encoder.requires_grad_(True)
        net.encoder.train()
    assert not any(name.startswith('encoder.') for name in saving)
    assert saving.keys() == plain.keys()
    assert max(relative_differences(saving, plain).values()) < 1e-4


def saved_bytes(net, gt, lq, memory_saving):
    """Bytes of all tensors autograd keeps for backward during one NLL forward pass."""
    total = [0]

    def pack(tensor):
        total[0] += tensor.numel() * tensor.element_size()
        return tensor

    net.memory_saving = memory_saving
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        net.encode(gt, lq)
    net.memory_saving = False
    return total[0]


def test_memory_saving_keeps_a_fraction_of_the_activations(trained):
    net, (gt, lq) = trained
    plain, saving = saved_bytes(net, gt, lq, False), saved_bytes(net, gt, lq, True)
    # kept: the level outputs, the conditioning features and each RRDB block's input, not the steps' activations
    assert saving < 0.25 * plain, (saving, plain)


def test_backward_runs_each_coupling_sub_network_once_for_the_inverse_and_the_recomputation(trained):
    net, (gt, lq) = trained
    couplings = [m.coupling.net for m in net.modules() if isinstance(m, FlowStep) and m.conditional]
    calls = []
    hooks = [c.register_forward_hook(lambda module, args, out: calls.append(module)) for c in couplings]
    try:
        counts = {}
        for memory_saving in (False, True):
            calls.clear()
            net.memory_saving = memory_saving
            net.zero_grad()
            net.encode(gt, lq)[1].mean().backward()
            counts[memory_saving] = len(calls)
    finally:
        net.memory_saving = False
        for hook in hooks:
            hook.remove()
    assert counts[False] == len(couplings)  # the forward pass
    assert counts[True] == 2 * len(couplings)  # + one evaluation in backward, shared by inverse and recomputation


def test_generic_chain_gives_input_condition_and_parameter_gradients_of_the_plain_loop(device):
    # float64: the reconstruction is exact up to rounding, so the gradients agree to ~1e-12 on any CPU (in float32
    # the plain loop's own rounding, which varies with the CPU's kernels, is ~1e-4 for the smallest gradients)
    torch.manual_seed(0)
    layers = [Squeeze(), FlowStep(12, cond_channels=5, hidden_channels=8), FlowStep(12), Split(12)]
    for layer in layers:
        layer.double().to(device)
        for p in layer.parameters():
            p.data.add_(0.1 * torch.randn_like(p))  # no zero-initialised layer: every gradient is non-trivial
    params = [p for layer in layers for p in layer.parameters()]
    x = torch.randn(2, 3, 8, 8, dtype=torch.float64).to(device).requires_grad_()
    cond = torch.randn(2, 5, 4, 4, dtype=torch.float64).to(device).requires_grad_()
    results = []
    for memory_saving in (False, True):
        out, logdet = run_invertible_chain(layers, x, cond, memory_saving)
        loss = (out**2).sum() + logdet.sum()
        results.append((out.detach(), torch.autograd.grad(loss, [x, cond] + params)))
    (out_plain, grads_plain), (out_saving, grads_saving) = results
    assert torch.equal(out_plain, out_saving)
    for g_saving, g_plain in zip(grads_saving, grads_plain):
        torch.testing.assert_close(g_saving, g_plain, rtol=1e-9, atol=1e-12)


def batch(seed, n=2, lq_size=8):
    generator = torch.Generator().manual_seed(seed)
    gt = torch.rand(n, 3, lq_size * 4, lq_size * 4, generator=generator)
    return {'lq': torch.nn.functional.avg_pool2d(gt, 4), 'gt': gt}


def test_training_with_memory_saving_follows_the_plain_training_with_actnorm_init_and_ema(tmp_path, device):
    states = []
    for memory_saving in (False, True):
        torch.manual_seed(0)
        model = SRFlowModel(make_opt(tmp_path / str(memory_saving), train={'memory_saving': memory_saving,
                                                                           'ema_decay': 0.9}, num_gpu=num_gpu(device)))
        for it in range(1, 4):
            model.feed_data(batch(it))
            model.optimize_parameters(it)
        states.append((model.get_bare_model(model.net_g).state_dict(), model.net_g_ema.state_dict()))
    (net_plain, ema_plain), (net_saving, ema_saving) = states
    for key in net_plain:
        torch.testing.assert_close(net_saving[key], net_plain[key], rtol=1e-4, atol=1e-5)
        torch.testing.assert_close(ema_saving[key], ema_plain[key], rtol=1e-4, atol=1e-5)


def test_non_finite_loss_is_still_skipped_with_memory_saving(tmp_path, device):
    model = SRFlowModel(make_opt(tmp_path, train={'memory_saving': True}, num_gpu=num_gpu(device)))
    model.feed_data(batch(1))
    model.optimize_parameters(1)  # (ActNorm initialisation)
    data = batch(2)
    data['gt'][0, 0, 0, 0] = float('nan')
    model.feed_data(data)
    before = {k: v.clone() for k, v in model.get_bare_model(model.net_g).state_dict().items()}
    model.optimize_parameters(2)
    assert model.log_dict['skipped_steps'] == 1
    after = model.get_bare_model(model.net_g).state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)


def test_ddp_training_with_memory_saving_keeps_both_gloo_ranks_identical(tmp_path):
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        port = s.getsockname()[1]
    batches = [[batch(20 + 10 * rank + it) for it in range(3)] for rank in range(2)]
    train = {'train_rrdb_delay': 0, 'memory_saving': True}
    mp.spawn(ddp_train_worker, args=(2, port, str(tmp_path), batches, train), nprocs=2, join=True)
    after0, after1 = (torch.load(osp.join(tmp_path, f'after{r}.pt')) for r in (0, 1))
    assert all(torch.equal(after0[k], after1[k]) for k in after0)
    before = torch.load(osp.join(tmp_path, 'before0.pt'))
    assert not torch.equal(after0['encoder.conv_first.weight'], before['encoder.conv_first.weight'])
    assert not torch.equal(after0['levels.0.steps.1.coupling.net.conv_in.weight'],
                           before['levels.0.steps.1.coupling.net.conv_in.weight'])
