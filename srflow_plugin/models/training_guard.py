"""Keeping a flow's training alive: spike rejection, in-memory snapshots, roll-back and learning-rate cool-down.

A normalizing flow's loss can jump by many orders of magnitude in one step and still be finite (1e22); such a step
ruins the weights before anything becomes NaN. :class:`TrainingGuard` decides, after the backward pass and
before the optimizer step, whether the step looks like the recent ones:

- **rejected** when the loss is above ``median + loss_deviations * max(1.4826 * MAD, loss_min_deviation)`` of the
  last ``window`` accepted losses, or the gradient norm (before clipping) is above ``grad_ratio`` times their
  median. The tests start after ``warmup_iter`` accepted steps. A rejected step is not applied (weights,
  optimizer state and EMA untouched) and is counted, like a non-finite one;
- **rolled back** after ``max_rejected`` consecutive rejected steps, or when the weights or the optimizer state
  stop being finite after a step: weights, optimizer state and the EMA network return to the last snapshot
  (taken every ``snapshot_freq`` iterations of finite weights, in memory), and the learning rates are multiplied
  by ``cooldown_factor`` for ``cooldown_iter`` iterations.

The counters and the recent history go into the training state, so a resumed run continues with them. The
snapshot itself is not saved: the checkpoint on disk is one (and was checked finite when written).

:func:`initialize_actnorm` runs ActNorm's data-dependent initialisation and undoes it when the batch gives
non-finite or degenerate statistics (a per-channel scale above ``max_scale``, e.g. from a flat crop), so that such
a batch never becomes the starting point of the run.
"""
import math
from collections import deque
from copy import deepcopy

import torch

from srflow_plugin.archs.flow_layers import ActNorm
from srflow_plugin.options_schema import SCHEMA, get_option

GUARD_SECTION = 'train.guard'
MAD_TO_STD = 1.4826  # the MAD of a normal distribution times this is its standard deviation


def _median(values):
    ordered = sorted(values)
    mid = len(ordered) // 2
    return ordered[mid] if len(ordered) % 2 else 0.5 * (ordered[mid - 1] + ordered[mid])


def _state_to(state, device):
    """A deep copy of a (nested) state dict with every tensor cloned (snapshots must not alias live tensors)."""
    if torch.is_tensor(state):
        return state.detach().clone().to(device)
    if isinstance(state, dict):
        return type(state)((k, _state_to(v, device)) for k, v in state.items())
    if isinstance(state, (list, tuple)):
        return type(state)(_state_to(v, device) for v in state)
    return deepcopy(state)


def tensors_finite(tensors):
    """True when every floating-point tensor in ``tensors`` is finite (one reduction, one sync)."""
    sums = [t.detach().float().sum() for t in tensors if torch.is_tensor(t) and t.is_floating_point()]
    return not sums or bool(torch.isfinite(torch.stack(sums).sum()))


def optimizer_tensors(optimizer):
    return [value for state in optimizer.state.values() for value in state.values() if torch.is_tensor(value)]


class TrainingGuard:
    """Spike rejection and roll-back for one network and its optimizer (see the module docstring).

    Args:
        enabled (bool): False: every finite step is applied (only the counters exist).
        warmup_iter (int): Accepted steps recorded before the spike tests start.
        window (int): Accepted steps kept as the recent history.
        loss_deviations (float): Robust deviations above the median loss that make a spike.
        loss_min_deviation (float): Floor of the robust deviation (loss units).
        grad_ratio (float): Gradient norm above this many times the median norm makes a spike.
        max_rejected (int): Consecutive rejected steps that trigger a roll-back.
        snapshot_freq (int): Iterations between snapshots.
        cooldown_factor (float): Learning-rate factor after a roll-back.
        cooldown_iter (int): Iterations the cool-down lasts.
    """

    def __init__(self, enabled=True, warmup_iter=50, window=200, loss_deviations=12.0, loss_min_deviation=0.05,
                 grad_ratio=100.0, max_rejected=5, snapshot_freq=100, cooldown_factor=0.1, cooldown_iter=200):
        self.enabled = enabled
        self.warmup_iter = warmup_iter
        self.loss_deviations = loss_deviations
        self.loss_min_deviation = loss_min_deviation
        self.grad_ratio = grad_ratio
        self.max_rejected = max_rejected
        self.snapshot_freq = snapshot_freq
        self.cooldown_factor = cooldown_factor
        self.cooldown_iter = cooldown_iter
        self.losses = deque(maxlen=window)
        self.grad_norms = deque(maxlen=window)
        self.rejected_steps = 0  # spikes not applied (non-finite steps are counted by the model)
        self.consecutive_rejected = 0
        self.rollbacks = 0
        self.cooldown_until = 0  # iterations up to and including this one run at the cooled-down rate
        self.snapshot = None
        self.snapshot_iter = None

    @classmethod
    def from_options(cls, opt):
        """The guard of ``train.guard`` (every key through the options schema)."""
        return cls(**{key: get_option(opt, GUARD_SECTION, key) for key in SCHEMA[GUARD_SECTION].keys})

    # ------------------------------------------------------------------ decisions
    def spike_reason(self, loss, grad_norm):
        """Why this step is a spike ('loss ...' / 'gradient norm ...'), or None when it looks normal."""
        if not self.enabled or len(self.losses) < self.warmup_iter:
            return None
        median = _median(self.losses)
        deviation = max(MAD_TO_STD * _median([abs(v - median) for v in self.losses]), self.loss_min_deviation)
        limit = median + self.loss_deviations * deviation
        if loss > limit:
            return f'loss {loss:.4g} > {limit:.4g} (median {median:.4g} + {self.loss_deviations:g} x {deviation:.3g})'
        if grad_norm is not None:
            grad_limit = self.grad_ratio * _median(self.grad_norms)
            if grad_norm > grad_limit:
                return f'gradient norm {grad_norm:.4g} > {grad_limit:.4g} ({self.grad_ratio:g} x median)'
        return None

    def accepted(self, loss, grad_norm):
        """Records an applied step."""
        self.losses.append(float(loss))
        self.grad_norms.append(float(grad_norm) if grad_norm is not None and math.isfinite(grad_norm) else 0.0)
        self.consecutive_rejected = 0

    def rejected(self, counted=True):
        """Records a step that was not applied; returns True when it is time to roll back."""
        if counted:
            self.rejected_steps += 1
        self.consecutive_rejected += 1
        return self.enabled and self.consecutive_rejected >= self.max_rejected

    def lr_factor(self, current_iter):
        return self.cooldown_factor if current_iter <= self.cooldown_until else 1.0

    def step_optimizer(self, optimizer, current_iter, step=None):
        """``optimizer.step()`` (or ``step()``, e.g. a gradient scaler's), with the learning rates scaled by the
        cool-down factor for this step only (the scheduler's values are left as they are)."""
        factor = self.lr_factor(current_iter)
        if factor != 1.0:
            saved = [group['lr'] for group in optimizer.param_groups]
            for group in optimizer.param_groups:
                group['lr'] = group['lr'] * factor
        (step or optimizer.step)()
        if factor != 1.0:
            for group, lr in zip(optimizer.param_groups, saved):
                group['lr'] = lr

    # ------------------------------------------------------------------ snapshots
    def snapshot_due(self, current_iter):
        return self.enabled and (self.snapshot is None or current_iter - self.snapshot_iter >= self.snapshot_freq)

    def take_snapshot(self, nets, optimizer, current_iter):
        """Keeps copies of the networks' weights and the optimizer state (on their device) to roll back to."""
        self.snapshot = dict(nets=[_state_to(net.state_dict(), None) for net in nets],
                             optimizer=_state_to(optimizer.state_dict(), None))
        self.snapshot_iter = current_iter

    def roll_back(self, nets, optimizer, current_iter):
        """Restores the last snapshot and starts the cool-down; returns the snapshot's iteration (None: none)."""
        self.consecutive_rejected = 0
        if self.snapshot is None:
            return None
        for net, state in zip(nets, self.snapshot['nets']):
            net.load_state_dict(state)
        optimizer.load_state_dict(_state_to(self.snapshot['optimizer'], None))
        self.rollbacks += 1
        self.cooldown_until = current_iter + self.cooldown_iter
        return self.snapshot_iter

    # ------------------------------------------------------------------ training state
    def state_dict(self):
        """Counters and history for the training state (plain numbers: loads with weights_only=True)."""
        return dict(rejected_steps=self.rejected_steps, rollbacks=self.rollbacks,
                    consecutive_rejected=self.consecutive_rejected, cooldown_until=self.cooldown_until,
                    losses=list(self.losses), grad_norms=list(self.grad_norms))

    def load_state_dict(self, state):
        self.rejected_steps = int(state.get('rejected_steps', 0))
        self.rollbacks = int(state.get('rollbacks', 0))
        self.consecutive_rejected = int(state.get('consecutive_rejected', 0))
        self.cooldown_until = int(state.get('cooldown_until', 0))
        self.losses.clear()
        self.losses.extend(state.get('losses', []))
        self.grad_norms.clear()
        self.grad_norms.extend(state.get('grad_norms', []))
        self.snapshot = None  # the resumed checkpoint is the next snapshot


def initialize_actnorm(net, gt, lq, max_scale):
    """Runs the data-dependent init of every not yet initialised ActNorm of ``net`` on (gt, lq).

    The init is undone (the layers stay uninitialised, their parameters zero) when any resulting parameter is
    non-finite or any per-channel scale exp(logs) exceeds ``max_scale`` (a channel with almost no variance in
    this batch, e.g. a flat crop): such statistics would make the next, different batch explode.

    Returns:
        tuple: (names of the layers initialised now, or None when the batch was refused; a reason or None).
    """
    fresh = {name: m for name, m in net.named_modules() if isinstance(m, ActNorm) and not m.initialized}
    if not fresh:
        return [], None
    before = {name: (m.bias.detach().clone(), m.logs.detach().clone()) for name, m in fresh.items()}
    with torch.no_grad():
        net.encode(gt, lq)  # training mode: the layers initialise themselves (all-reduced under DDP)
    changed = [name for name, m in fresh.items() if not torch.equal(before[name][0], m.bias)]
    reason = None
    params = [p for name in changed for p in (fresh[name].bias, fresh[name].logs)]
    if not tensors_finite(params):
        reason = 'non-finite statistics'
    else:
        worst = max((float(fresh[name].logs.detach().max()), name) for name in changed) if changed else None
        if worst is not None and worst[0] > math.log(max_scale):
            reason = f'degenerate statistics ({worst[1]}: scale {math.exp(worst[0]):.3g} > {max_scale:g})'
    if reason is None:
        return changed, None
    with torch.no_grad():
        for name, module in fresh.items():
            module.bias.copy_(before[name][0])
            module.logs.copy_(before[name][1])
            module.initialized = False
    return None, reason
