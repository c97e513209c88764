"""The spike guard: rejection, roll-back, learning-rate cool-down, counters in the saved state, resume, ActNorm init
and a reproduced blow-up that recovers (srflow_plugin/models/training_guard.py)."""
import math
from os import path as osp

import numpy as np
import pytest
import torch

from srflow_plugin.archs.flow_layers import ActNorm
from srflow_plugin.models.srflow_model import SRFlowModel
from srflow_plugin.models.training_guard import TrainingGuard
from helpers.train import make_opt

# a fast guard for tests: spike tests after 5 steps, roll back after 3 rejections, snapshot every 4 iterations
FAST_GUARD = dict(warmup_iter=5, window=20, max_rejected=3, snapshot_freq=4, cooldown_factor=0.1, cooldown_iter=3)


def photo_batches(n, batch=4, lq_size=8, seed=0):
    """n batches of random GT crops (4 x lq_size) of scikit-image photographs with MATLAB-bicubic LR images."""
    from basicsr.utils.matlab_functions import imresize
    from skimage import data
    photos = [getattr(data, name)()[..., :3].astype(np.float32) / 255 for name in ('astronaut', 'coffee', 'chelsea')]
    rng = np.random.default_rng(seed)
    size = lq_size * 4
    batches = []
    for _ in range(n):
        gts = []
        for _ in range(batch):
            img = photos[rng.integers(len(photos))]
            y, x = rng.integers(0, img.shape[0] - size), rng.integers(0, img.shape[1] - size)
            gts.append(img[y:y + size, x:x + size])
        lqs = [imresize(g, 0.25) for g in gts]
        batches.append({'gt': torch.from_numpy(np.stack(gts)).permute(0, 3, 1, 2).contiguous(),
                        'lq': torch.from_numpy(np.stack(lqs)).permute(0, 3, 1, 2).clamp(0, 1).contiguous()})
    return batches


def guarded_model(tmp_path, guard=None, **train):
    opt = make_opt(tmp_path, train={'total_iter': 1000, 'scheduler': None, 'guard': dict(FAST_GUARD, **(guard or {})),
                                    **train})
    return SRFlowModel(opt)


def run(model, batches, start=1, disturb=None):
    """Trains on ``batches`` from iteration ``start``; ``disturb(model, it)`` may corrupt an iteration first."""
    losses = []
    for it, data in enumerate(batches, start=start):
        model.feed_data(data)
        if disturb is not None:
            disturb(model, it)
        model.update_learning_rate(it)
        model.optimize_parameters(it)
        losses.append(float(model.log_dict.get('l_nll', float('nan'))))
    return losses


def weights(model):
    return {k: v.detach().clone() for k, v in model.get_bare_model(model.net_g).state_dict().items()}


def add_to_loss(model, value):
    """Makes the next loss ``value`` bits/dim higher (a finite spike), for one call."""
    loss = model.cri_nll.forward
    model.cri_nll.forward = lambda nll: (setattr(model.cri_nll, 'forward', loss), loss(nll) + value)[1]


def test_spike_test_uses_median_and_robust_deviation_of_the_recent_history():
    guard = TrainingGuard(warmup_iter=10, window=50, loss_deviations=5, loss_min_deviation=0.01, grad_ratio=10)
    for i in range(20):
        if i < 10:
            assert guard.spike_reason(100.0, 1e9) is None  # warm-up: nothing is judged yet
        guard.accepted(1.0 + 0.1 * (i % 2), 2.0)  # median 1.05, MAD 0.05 -> deviation 0.0741
    assert guard.spike_reason(1.05 + 5 * 0.0741 - 0.01, 2.0) is None
    assert guard.spike_reason(1.05 + 5 * 0.0741 + 0.01, 2.0).startswith('loss')
    assert guard.spike_reason(1.0, 19.9) is None
    assert guard.spike_reason(1.0, 20.1).startswith('gradient norm')
    assert guard.spike_reason(-50.0, 2.0) is None  # a much lower loss is progress, not a spike


def test_finite_loss_spike_is_rejected_and_changes_neither_weights_nor_adam_nor_ema(tmp_path):
    model = guarded_model(tmp_path, ema_decay=0.9)
    batches = photo_batches(8)
    run(model, batches[:7])
    before, ema = weights(model), {k: v.clone() for k, v in model.net_g_ema.state_dict().items()}
    adam = [v.clone() for s in model.optimizer_g.state.values() for v in s.values()]
    add_to_loss(model, 1e6)
    run(model, batches[7:], start=8)
    assert all(torch.equal(v, before[k]) for k, v in weights(model).items())
    assert all(torch.equal(v, ema[k]) for k, v in model.net_g_ema.state_dict().items())
    adam_now = [v for s in model.optimizer_g.state.values() for v in s.values()]
    assert all(torch.equal(a, b) for a, b in zip(adam, adam_now))
    assert model.log_dict['rejected_steps'] == 1 and model.log_dict['skipped_steps'] == 0
    assert model.log_dict['rollbacks'] == 0


def test_gradient_spike_is_rejected(tmp_path):
    model = guarded_model(tmp_path)
    batches = photo_batches(8)
    run(model, batches[:7])
    loss = model.cri_nll.forward
    model.cri_nll.forward = lambda nll: loss(nll) * 1e4 - 1e4 * loss(nll).detach()  # same value, 1e4 x gradients
    run(model, batches[7:], start=8)
    assert model.log_dict['rejected_steps'] == 1


def test_consecutive_rejections_roll_back_to_the_last_snapshot_and_cool_the_learning_rate_down(
        tmp_path, basicsr_messages):
    model = guarded_model(tmp_path)
    batches = photo_batches(14)
    run(model, batches[:8])  # snapshots after iterations 0 (start), 4 and 8
    at_snapshot = weights(model)
    run(model, batches[8:10], start=9)
    assert not all(torch.equal(v, at_snapshot[k]) for k, v in weights(model).items())
    lrs = []
    step = model.optimizer_g.step
    model.optimizer_g.step = lambda: (lrs.append([g['lr'] for g in model.optimizer_g.param_groups]), step())[1]
    for it in (11, 12, 13):
        add_to_loss(model, 1e6)
        run(model, [batches[it - 1]], start=it)
    assert model.log_dict['rollbacks'] == 1 and model.log_dict['rejected_steps'] == 3
    assert all(torch.equal(v, at_snapshot[k]) for k, v in weights(model).items())
    assert any(m.startswith('Iteration 13: 3 consecutive steps not applied; rolled back to the snapshot of iteration 8 '
                            '(roll-back 1); learning rates x0.1 until iteration 16') for m in basicsr_messages)
    # cool-down: iterations 14-16 step at 0.1 x the scheduled rate, 17 at the full rate again
    run(model, photo_batches(4, seed=1), start=14)
    assert lrs == [[pytest.approx(1e-4)] * 2] * 3 + [[pytest.approx(1e-3)] * 2]  # flow and encoder groups
    assert model.optimizer_g.param_groups[0]['lr'] == pytest.approx(1e-3)  # the scheduler's value is untouched
    assert model.log_dict['lr_factor'] == 1.0


def test_non_finite_weights_after_a_step_roll_back_at_once(tmp_path):
    model = guarded_model(tmp_path)
    batches = photo_batches(7)
    run(model, batches[:4])
    at_snapshot = weights(model)
    step = model.optimizer_g.step

    def poisoned_step():
        step()
        with torch.no_grad():
            next(model.get_bare_model(model.net_g).levels.parameters()).view(-1)[0] = float('inf')

    model.optimizer_g.step = poisoned_step
    run(model, batches[4:5], start=5)
    model.optimizer_g.step = step
    assert model.log_dict['rollbacks'] == 1
    assert all(torch.equal(v, at_snapshot[k]) for k, v in weights(model).items())
    run(model, batches[5:], start=6)
    assert all(bool(torch.isfinite(v).all()) for v in weights(model).values())


def test_saved_state_holds_the_counters_and_a_resumed_run_continues_the_cool_down(tmp_path):
    model = guarded_model(tmp_path / 'a')
    batches = photo_batches(16)
    run(model, batches[:8])
    for it in (9, 10, 11):
        add_to_loss(model, 1e6)
        run(model, [batches[it - 1]], start=it)
    model.save(0, 11)
    opt = model.opt
    state = torch.load(osp.join(opt['path']['training_states'], '11.state'), weights_only=True)
    assert state['guard']['rollbacks'] == 1 and state['guard']['rejected_steps'] == 3
    assert state['guard']['cooldown_until'] == 14

    resumed = guarded_model(tmp_path / 'b', ema_decay=0)
    resumed.opt['path']['pretrain_network_g'] = osp.join(opt['path']['models'], 'net_g_11.pth')
    resumed = SRFlowModel(resumed.opt)
    resumed.resume_training(state)
    assert resumed.guard.rollbacks == 1 and resumed.guard.lr_factor(12) == 0.1 and resumed.guard.lr_factor(15) == 1
    assert len(resumed.guard.losses) == len(model.guard.losses)
    # both runs continue identically from here (snapshots, history and cool-down agree)
    run(model, batches[11:], start=12)
    run(resumed, batches[11:], start=12)
    assert all(torch.allclose(v, weights(model)[k], atol=1e-6) for k, v in weights(resumed).items())
    assert resumed.log_dict['rejected_steps'] == 3 and resumed.log_dict['rollbacks'] == 1


def test_a_normal_run_on_photographs_fires_zero_times_with_the_default_guard(tmp_path):
    opt = make_opt(tmp_path, train={'total_iter': 160, 'scheduler': None})
    model = SRFlowModel(opt)
    losses = run(model, photo_batches(160, seed=7))  # 110 steps judged after the 50 of the warm-up
    assert model.guard.enabled and model.guard.warmup_iter == 50  # the defaults of the schema
    assert model.log_dict['rejected_steps'] == 0 and model.log_dict['rollbacks'] == 0
    assert model.log_dict['skipped_steps'] == 0
    assert np.mean(losses[-20:]) < np.mean(losses[:20]) - 0.5  # it did learn


def _blow_up(at, scale=0.1):
    """Perturbs the flow's weights at iteration ``at``: the loss explodes (about 5e8 bits/dim) but stays finite."""

    def disturb(model, it):
        if it == at:
            generator = torch.Generator().manual_seed(99)
            with torch.no_grad():
                for p in model.get_bare_model(model.net_g).levels.parameters():
                    p.add_(torch.randn(p.shape, generator=generator) * scale)

    return disturb


def test_a_reproduced_blow_up_is_rolled_back_and_ends_near_the_undisturbed_run(tmp_path):
    batches = photo_batches(80, seed=3)
    guard = dict(warmup_iter=10, window=50, snapshot_freq=10, cooldown_iter=5, max_rejected=3)
    torch.manual_seed(0)
    clean = run(guarded_model(tmp_path / 'clean', guard), batches)
    torch.manual_seed(0)
    guarded = guarded_model(tmp_path / 'guarded', guard)
    recovered = run(guarded, batches, disturb=_blow_up(50))
    torch.manual_seed(0)
    unguarded = guarded_model(tmp_path / 'off', dict(guard, enabled=False))
    ruined = run(unguarded, batches, disturb=_blow_up(50))

    assert guarded.guard.rollbacks >= 1 and guarded.guard.rejected_steps >= 3
    # measured: recovered -2.04 vs undisturbed -2.27 bits/dim (mean of the last 10); without the guard about 940
    assert abs(np.mean(recovered[-10:]) - np.mean(clean[-10:])) < 0.3
    assert np.mean(ruined[-10:]) > np.mean(clean[-10:]) + 10  # finite but ruined: every spike was applied
    assert all(bool(torch.isfinite(v).all()) for v in weights(guarded).values())


def test_a_nan_pixel_in_the_first_batch_does_not_initialise_actnorm(tmp_path):
    model = guarded_model(tmp_path)
    batches = photo_batches(6)
    batches[0]['gt'][0, 1, 3, 3] = float('nan')
    run(model, batches[:1])
    bare = model.get_bare_model(model.net_g)
    assert all(not m.initialized and not m.bias.any() for m in bare.modules() if isinstance(m, ActNorm))
    losses = run(model, batches[1:], start=2)
    assert model.actnorm_refused == 1
    for m in bare.modules():
        if isinstance(m, ActNorm):
            assert m.initialized and bool(torch.isfinite(m.bias).all() and torch.isfinite(m.logs).all())
    assert all(math.isfinite(v) for v in losses) and model.log_dict['skipped_steps'] == 0


def test_a_flat_first_batch_is_refused_as_degenerate(tmp_path):
    model = guarded_model(tmp_path)
    flat = {'gt': torch.full((2, 3, 32, 32), 0.5), 'lq': torch.full((2, 3, 8, 8), 0.5)}
    model.feed_data(flat)
    model.optimize_parameters(1)
    assert model.actnorm_refused == 1 and not model.actnorm_ready


def test_actnorm_is_initialised_on_the_collected_crops_of_several_batches(tmp_path):
    model = guarded_model(tmp_path, actnorm_init_samples=8)
    batches = photo_batches(3, batch=4)
    before = weights(model)
    run(model, batches[:1])
    assert not model.actnorm_ready and all(torch.equal(v, before[k]) for k, v in weights(model).items())
    run(model, batches[1:2], start=2)  # 8 crops collected: initialised on both batches, then the step
    first = next(m for m in model.get_bare_model(model.net_g).modules() if isinstance(m, ActNorm))
    gt = torch.cat([b['gt'] for b in batches[:2]])
    mean = torch.nn.functional.pixel_unshuffle(gt, 2).mean((0, 2, 3))
    assert model.actnorm_ready
    assert torch.allclose(-first.bias.flatten(), mean, atol=1e-2)  # one Adam step of 1e-3 since
