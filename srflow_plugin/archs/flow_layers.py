"""Invertible layers of the SRFlow flow.

Every layer is an :class:`~srflow_plugin.archs.flow_base.InvertibleLayer`:

- ``forward(x, cond=None) -> (y, logdet)``: the encode direction (HR -> latents); ``logdet`` has shape [B] and is
  log|det dy/dx| per sample.
- ``inverse(y, cond=None) -> (x, logdet)``: the exact inverse; ``logdet`` is log|det dx/dy| = -forward's logdet.

``cond`` is what a conditional layer needs from the LR image. It is prepared once per LR image by
``prepare_condition(u)`` from the encoder features ``u``, so that drawing many samples for one LR image does not
recompute anything that depends on the LR alone. A prepared condition of batch 1 broadcasts against a batch of
latents.

Two more paths exist for speed and memory, and each equals the exact inverse to float rounding:
``fast_inverse(y, cond)`` (sampling: the inverse's output alone, no log-det, folded sub-networks) and
``FlowStep.inverse_and_recompute`` (memory-saving training: the input from the output and the step's graph
recomputed, sharing one sub-network evaluation).
"""
from typing import Any, Optional, Tuple, Union

import torch
from torch import distributed as dist
from torch import nn as nn
from torch.nn import functional as F

from .flow_base import InvertibleLayer

# sigmoid(h + 2) starts every affine scale at sigmoid(2) ~= 0.881 for zero-initialised networks
SCALE_OFFSET = 2.0
SCALE_EPS = 1e-4

# the prepared conditions: an injector's (shift, scale, per-sample log-det), a flow step's (injector's, coupling's
# first-layer response) or None for a plain step
InjectorCondition = Tuple[torch.Tensor, torch.Tensor, torch.Tensor]
StepCondition = Optional[Tuple[InjectorCondition, torch.Tensor]]


def _per_sample(value, batch):
    """Broadcasts a per-sample log-det (scalar or [1]) to shape [batch]."""
    return value.reshape(-1).expand(batch) if value.numel() == 1 else value


def affine_params(h: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
    """Splits a sub-network output into (shift, scale): even channels shift, odd channels scale."""
    return h[:, 0::2], torch.sigmoid(h[:, 1::2] + SCALE_OFFSET) + SCALE_EPS


def full_precision(x: torch.Tensor) -> torch.autocast:
    """Turns autocast off: the flow itself (log-dets, 1x1 convolutions, the split prior) stays in float32 under
    mixed precision, only the encoder and the affine sub-networks run in lower precision."""
    return torch.autocast(x.device.type, enabled=False)


_ORDERS = {}


def _shift_then_scale(channels, device):
    """Channel order putting a sub-network's shift channels (even) before its scale channels (odd)."""
    key = (channels, device)
    if key not in _ORDERS:
        _ORDERS[key] = torch.cat([torch.arange(0, channels, 2), torch.arange(1, channels, 2)]).to(device)
    return _ORDERS[key]


def _all_reduce_sum(t):
    if dist.is_available() and dist.is_initialized():
        dist.all_reduce(t)
    return t


class Squeeze(InvertibleLayer):
    """Space-to-depth by 2: channel c*4 + dy*2 + dx (identical to ``pixel_unshuffle(x, 2)``)."""

    def forward(self, x: torch.Tensor, cond: Any = None) -> Tuple[torch.Tensor, torch.Tensor]:
        return F.pixel_unshuffle(x, 2), x.new_zeros(x.shape[0])

    def inverse(self, y: torch.Tensor, cond: Any = None) -> Tuple[torch.Tensor, torch.Tensor]:
        return F.pixel_shuffle(y, 2), y.new_zeros(y.shape[0])


class ActNorm(InvertibleLayer):
    """Per-channel affine normalisation y = (x + bias) * exp(logs) with data-dependent initialisation.

    On the first forward call in training mode, bias and logs are set so that this batch comes out with zero mean
    and unit standard deviation per channel (statistics summed over all processes under torch.distributed, so
    every rank initialises identically). Initialisation is skipped when any bias is already non-zero (loaded or
    trained weights), and never happens in eval mode.

    Args:
        num_channels (int): Channel number of the input.
    """

    def __init__(self, num_channels: int):
        super().__init__()
        self.bias = nn.Parameter(torch.zeros(1, num_channels, 1, 1))
        self.logs = nn.Parameter(torch.zeros(1, num_channels, 1, 1))
        self.initialized = False

    @torch.no_grad()
    def initialize(self, x: torch.Tensor) -> None:
        """Sets bias = -mean and logs = log(1 / (std + 1e-6)) from the batch ``x`` (all processes together)."""
        dims = (0, 2, 3)
        count = _all_reduce_sum(x.new_tensor(float(x.numel() // x.shape[1])))
        mean = _all_reduce_sum(x.sum(dims)) / count
        var = _all_reduce_sum(((x - mean.view(1, -1, 1, 1))**2).sum(dims)) / count
        self.bias.copy_(-mean.view_as(self.bias))
        self.logs.copy_(torch.log(1.0 / (var.sqrt() + 1e-6)).view_as(self.logs))
        self.initialized = True

    def _maybe_initialize(self, x):
        if self.initialized or not self.training:
            return
        if bool((self.bias != 0).any()):
            self.initialized = True
        else:
            self.initialize(x)

    def _logdet(self, x):
        return _per_sample(self.logs.sum() * (x.shape[2] * x.shape[3]), x.shape[0])

    def forward(self, x: torch.Tensor, cond: Any = None) -> Tuple[torch.Tensor, torch.Tensor]:
        self._maybe_initialize(x)
        return (x + self.bias) * torch.exp(self.logs), self._logdet(x)

    def inverse(self, y: torch.Tensor, cond: Any = None) -> Tuple[torch.Tensor, torch.Tensor]:
        return y * torch.exp(-self.logs) - self.bias, -self._logdet(y)


class InvertibleConv1x1(InvertibleLayer):
    """Invertible 1x1 convolution with a full C x C matrix (Glow, without LU decomposition).

    The inverse is computed in float64. In eval mode the inverse and log|det W| are computed once and reused until
    the weight changes in any way (an optimizer step, ``load_state_dict``, ``.to()``, an EMA update through
    ``.data``): the cache keeps a copy of the weight it was computed from and compares it on every call, O(C^2),
    negligible next to the convolution. The cached values are constants for autograd, so gradients still reach the
    input but not the weight in eval mode. Train mode always recomputes them with gradients.

    Args:
        num_channels (int): Channel number of the input.
    """

    def __init__(self, num_channels: int):
        super().__init__()
        weight = torch.linalg.qr(torch.randn(num_channels, num_channels))[0]
        self.weight = nn.Parameter(weight)
        self._cache = None  # (copy of the weight, inverse, log|det|)

    def _fresh(self):
        logabsdet = torch.linalg.slogdet(self.weight)[1]
        inverse = torch.inverse(self.weight.double()).to(self.weight.dtype)
        return inverse, logabsdet

    def inverse_and_logabsdet(self) -> Tuple[torch.Tensor, torch.Tensor]:
        """(W^-1, log|det W|), cached in eval mode."""
        if self.training:
            self._cache = None
            return self._fresh()
        w = self.weight.detach()
        cached = self._cache
        stale = cached is None or cached[0].dtype != w.dtype or cached[0].device != w.device
        if stale or not torch.equal(cached[0], w):
            with torch.inference_mode(False), torch.no_grad():
                self._cache = (w.clone(), ) + self._fresh()
        return self._cache[1:]

    def _logdet(self, x, logabsdet):
        return _per_sample(logabsdet * (x.shape[2] * x.shape[3]), x.shape[0])

    def forward(self, x: torch.Tensor, cond: Any = None) -> Tuple[torch.Tensor, torch.Tensor]:
        logabsdet = torch.linalg.slogdet(self.weight)[1] if self.training else self.inverse_and_logabsdet()[1]
        c = self.weight.shape[0]
        with full_precision(x):
            y = F.conv2d(x, self.weight.view(c, c, 1, 1))
        return y, self._logdet(x, logabsdet)

    def inverse(self, y: torch.Tensor, cond: Any = None) -> Tuple[torch.Tensor, torch.Tensor]:
        inverse, logabsdet = self.inverse_and_logabsdet()
        c = inverse.shape[0]
        with full_precision(y):
            x = F.conv2d(y, inverse.view(c, c, 1, 1))
        return x, -self._logdet(y, logabsdet)


class ConvActNorm(nn.Conv2d):
    """Convolution without bias followed by ActNorm ("same" padding, weights drawn from N(0, 0.05)).

    Args:
        in_channels (int): Input channels.
        out_channels (int): Output channels.
        kernel_size (int): 3 or 1.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int):
        super().__init__(in_channels, out_channels, kernel_size, padding=kernel_size // 2, bias=False)
        nn.init.normal_(self.weight, 0.0, 0.05)
        self.actnorm = ActNorm(out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.actnorm(super().forward(x))[0]


CHANNELS_LAST = torch.channels_last


def _channels_last(weight):
    """A convolution weight in channels-last layout: the convolution then runs, and returns its output, in that
    layout, which oneDNN computes up to 2x faster on the CPU for the sub-networks' 64-channel activations."""
    return weight.contiguous(memory_format=CHANNELS_LAST)


class ZeroConv2d(nn.Conv2d):
    """3x3 convolution with bias whose output is scaled by exp(3 * logs); everything starts at zero.

    Args:
        in_channels (int): Input channels.
        out_channels (int): Output channels.
    """

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__(in_channels, out_channels, 3, padding=1)
        nn.init.zeros_(self.weight)
        nn.init.zeros_(self.bias)
        self.logs = nn.Parameter(torch.zeros(out_channels, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x) * torch.exp(self.logs * 3)


class ConditionalSubNet(nn.Module):
    """Conv3x3 + ActNorm -> ReLU -> Conv1x1 + ActNorm -> ReLU -> ZeroConv3x3 on cat([x, cond]).

    The first convolution is linear, so its response to ``cond`` is computed apart (``condition_term``) and can be
    reused for every sample drawn for the same LR image.

    Args:
        in_channels (int): Channels of the per-sample input x (0 when the input is the condition alone).
        cond_channels (int): Channels of the conditioning features.
        out_channels (int): Output channels.
        hidden_channels (int): Width of the hidden layers.
    """

    def __init__(self, in_channels: int, cond_channels: int, out_channels: int, hidden_channels: int):
        super().__init__()
        self.in_channels = in_channels
        self.conv_in = ConvActNorm(in_channels + cond_channels, hidden_channels, 3)
        self.conv_hidden = ConvActNorm(hidden_channels, hidden_channels, 1)
        self.conv_out = ZeroConv2d(hidden_channels, out_channels)

    def condition_term(self, cond: torch.Tensor) -> torch.Tensor:
        """The first convolution's response to the conditioning channels."""
        return F.conv2d(cond, self.conv_in.weight[:, self.in_channels:], padding=1)

    def forward_folded(self,
                       x: Optional[torch.Tensor],
                       cond_term: torch.Tensor,
                       out_order: Optional[torch.Tensor] = None) -> torch.Tensor:
        """:meth:`forward` with each ActNorm and the ZeroConv2d scale folded into the convolutions (fewer passes
        over the activations, for sampling); ``out_order`` permutes the output channels."""
        act_in, act_hidden, conv_out = self.conv_in.actnorm, self.conv_hidden.actnorm, self.conv_out
        gain = torch.exp(act_in.logs)
        h = ((cond_term + act_in.bias) * gain).contiguous(memory_format=CHANNELS_LAST)  # LR-only: batch 1
        if self.in_channels:
            weight = _channels_last(self.conv_in.weight[:, :self.in_channels] * gain.view(-1, 1, 1, 1))
            h = F.conv2d(x, weight, padding=1).add_(h)
        else:
            h = h.clone()
        h = torch.relu_(h)
        gain = torch.exp(act_hidden.logs).view(-1)
        weight = _channels_last(self.conv_hidden.weight * gain.view(-1, 1, 1, 1))
        h = torch.relu_(F.conv2d(h, weight, act_hidden.bias.view(-1) * gain))
        gain = torch.exp(conv_out.logs * 3).view(-1)
        weight, bias = conv_out.weight * gain.view(-1, 1, 1, 1), conv_out.bias * gain
        if out_order is not None:
            weight, bias = weight[out_order], bias[out_order]
        return F.conv2d(h, _channels_last(weight), bias, padding=1).contiguous()

    def forward(self, x: Optional[torch.Tensor], cond_term: torch.Tensor) -> torch.Tensor:
        h = cond_term
        if self.in_channels:
            h = F.conv2d(x, self.conv_in.weight[:, :self.in_channels], padding=1) + h
        h = F.relu(self.conv_in.actnorm(h)[0])
        h = F.relu(self.conv_hidden(h))
        return self.conv_out(h)  # under autocast too in the parameters' precision: ZeroConv2d's exp(logs) promotes


class AffineInjector(InvertibleLayer):
    """z = (z + shift(u)) * scale(u): an affine map whose parameters depend on the LR features only.

    Args:
        num_channels (int): Channels of z.
        cond_channels (int): Channels of the conditioning features u.
        hidden_channels (int): Width of the sub-network.
    """

    def __init__(self, num_channels: int, cond_channels: int, hidden_channels: int):
        super().__init__()
        self.net = ConditionalSubNet(0, cond_channels, 2 * num_channels, hidden_channels)

    def prepare_condition(self, u: torch.Tensor) -> InjectorCondition:
        """(shift, scale, per-sample log-det) for the features u; everything here depends on the LR alone."""
        shift, scale = affine_params(self.net(None, self.net.condition_term(u)))
        return shift, scale, torch.log(scale).flatten(1).sum(1)

    def forward(self, x: torch.Tensor, cond: InjectorCondition) -> Tuple[torch.Tensor, torch.Tensor]:
        shift, scale, logdet = cond
        return (x + shift) * scale, _per_sample(logdet, x.shape[0])

    def inverse(self, y: torch.Tensor, cond: InjectorCondition) -> Tuple[torch.Tensor, torch.Tensor]:
        shift, scale, logdet = cond
        return y / scale - shift, -_per_sample(logdet, y.shape[0])

    def fast_inverse(self, y: torch.Tensor, cond: InjectorCondition) -> torch.Tensor:
        """``inverse(y, cond)[0]`` for sampling: one pass, with 1 / scale computed on the LR-only tensor."""
        shift, scale, _ = cond
        return torch.addcmul(-shift, y, 1 / scale)


class AffineCouplingLayer(InvertibleLayer):
    """z2 = (z2 + shift(z1, cond)) * scale(z1, cond) with z1 = the first ``num_kept`` channels, kept as they are.

    A subclass sets ``num_kept`` and ``net``, a sub-network with ``net(z1, cond_term)`` -> 2 * (C - num_kept)
    channels (even ones shift, odd ones scale, :func:`affine_params`) and ``net.condition_term(u)``, its response
    to the conditioning features u alone (the prepared condition).
    """

    num_kept: int
    net: nn.Module

    def prepare_condition(self, u: torch.Tensor) -> torch.Tensor:
        """The sub-network's first-layer response to u, shared by all samples of one LR image."""
        return self.net.condition_term(u)

    def _shift_scale(self, z1, cond):
        return affine_params(self.net(z1, cond))

    def couple(self, x: torch.Tensor, shift: torch.Tensor, scale: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """The coupling with given (shift, scale) of the kept half: (y, logdet)."""
        z1, z2 = x[:, :self.num_kept], x[:, self.num_kept:]
        return torch.cat([z1, (z2 + shift) * scale], 1), torch.log(scale).flatten(1).sum(1)

    def uncouple(self, y: torch.Tensor, shift: torch.Tensor, scale: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """The inverse of :meth:`couple`: (x, -logdet)."""
        z1, z2 = y[:, :self.num_kept], y[:, self.num_kept:]
        return torch.cat([z1, z2 / scale - shift], 1), -torch.log(scale).flatten(1).sum(1)

    def forward(self, x: torch.Tensor, cond: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        return self.couple(x, *self._shift_scale(x[:, :self.num_kept], cond))

    def inverse(self, y: torch.Tensor, cond: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        return self.uncouple(y, *self._shift_scale(y[:, :self.num_kept], cond))


class ConditionalAffineCoupling(AffineCouplingLayer):
    """SRFlow's coupling: :class:`AffineCouplingLayer` with a :class:`ConditionalSubNet`.

    Args: as :class:`AffineInjector` (``num_channels``, ``cond_channels``, ``hidden_channels``); the sub-network
    also reads z1.
    """

    def __init__(self, num_channels: int, cond_channels: int, hidden_channels: int):
        super().__init__()
        self.num_kept = num_channels // 2
        self.net = ConditionalSubNet(self.num_kept, cond_channels, 2 * (num_channels - self.num_kept), hidden_channels)

    def fast_inverse(self, y: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        """``inverse(y, cond)[0]`` for sampling: folded sub-network whose shift and scale channels come out as two
        contiguous halves, and no log-det."""
        z1, z2 = y[:, :self.num_kept], y[:, self.num_kept:]
        c = z2.shape[1]
        h = self.net.forward_folded(z1, cond, _shift_then_scale(2 * c, y.device))
        scale = torch.sigmoid(h[:, c:] + SCALE_OFFSET) + SCALE_EPS
        return torch.cat([z1, z2 / scale - h[:, :c]], 1)


class _SharedEvaluation(torch.autograd.Function):
    """An output computed earlier, in a graph of its own from leaf tensors, placed in another graph at ``inputs``
    (tensors equal to those leaves, one for one): the gradient reaching the output goes through its own graph
    once, and what reaches each leaf continues at the matching input. ``evaluated`` = (output, leaves)."""

    @staticmethod
    def forward(ctx, evaluated, *inputs):
        ctx.out, ctx.leaves = evaluated
        return ctx.out.detach().clone()

    @staticmethod
    def backward(ctx, grad):
        wanted = [leaf for leaf in ctx.leaves if leaf.requires_grad]
        found = iter(torch.autograd.grad(ctx.out, wanted, grad, allow_unused=True))
        return (None, ) + tuple(next(found) if leaf.requires_grad else None for leaf in ctx.leaves)


class FlowStep(InvertibleLayer):
    """ActNorm -> invertible 1x1 conv -> [affine injector -> conditional affine coupling].

    ``cond`` is the step's prepared condition (:meth:`prepare_condition`) or the LR features u, from which the step
    prepares it when it runs. Without ``cond_channels`` the step is "plain" (ActNorm and 1x1 conv only) and ignores
    ``cond``.

    Three ways back from the output y, one exact inverse and two faster equivalents:

    - :meth:`inverse`: the contract's exact inverse, (x, log-det), layer by layer;
    - :meth:`fast_inverse`: x alone, for sampling (no log-dets, folded sub-networks, one 1x1 convolution);
    - :meth:`inverse_and_recompute`: x and the step's output recomputed from it with its graph, for the
      memory-saving backward (:func:`~srflow_plugin.archs.invertible_backprop.run_invertible_chain`).

    Args:
        num_channels (int): Channels of z.
        cond_channels (int | None): Channels of the conditioning features; None for a plain step.
        hidden_channels (int): Width of the injector and coupling sub-networks.
    """

    def __init__(self, num_channels: int, cond_channels: Optional[int] = None, hidden_channels: int = 64):
        super().__init__()
        self.actnorm = ActNorm(num_channels)
        self.invconv = InvertibleConv1x1(num_channels)
        self.conditional = cond_channels is not None
        if self.conditional:
            self.injector = AffineInjector(num_channels, cond_channels, hidden_channels)
            self.coupling = ConditionalAffineCoupling(num_channels, cond_channels, hidden_channels)

    def prepare_condition(self, u: torch.Tensor) -> StepCondition:
        """What this step needs from the LR features u (None for a plain step)."""
        if not self.conditional:
            return None
        return self.injector.prepare_condition(u), self.coupling.prepare_condition(u)

    def _layers(self, cond):
        layers = [(self.actnorm, None), (self.invconv, None)]
        if self.conditional:
            if torch.is_tensor(cond):  # the LR features u themselves: prepare this step's part now
                cond = self.prepare_condition(cond)
            layers += [(self.injector, cond[0]), (self.coupling, cond[1])]
        return layers

    def forward(self,
                x: torch.Tensor,
                cond: Union[StepCondition, torch.Tensor] = None) -> Tuple[torch.Tensor, torch.Tensor]:
        logdet = 0
        for layer, layer_cond in self._layers(cond):
            x, layer_logdet = layer(x, layer_cond)
            logdet = logdet + layer_logdet
        return x, logdet

    def inverse(self,
                y: torch.Tensor,
                cond: Union[StepCondition, torch.Tensor] = None) -> Tuple[torch.Tensor, torch.Tensor]:
        logdet = 0
        for layer, layer_cond in reversed(self._layers(cond)):
            y, layer_logdet = layer.inverse(y, layer_cond)
            logdet = logdet + layer_logdet
        return y, logdet

    def inverse_and_recompute(self, y: torch.Tensor, cond: StepCondition,
                              input_grad: bool) -> Optional[Tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
        """Memory-saving backward's work for this step in one pass (see ``invertible_backprop``): the input x from
        the output y, and the output and log-det recomputed from x with their graph. The coupling's sub-network
        runs once for both: its input, the first half of y, is the same before and after the coupling, so it runs
        on a leaf copy of it, and its output serves the inverse and, through :class:`_SharedEvaluation`, the
        recomputed graph.

        Args:
            y (Tensor): The step's output.
            cond (tuple | None): The prepared condition (:meth:`prepare_condition`).
            input_grad (bool): Whether the returned x requires a gradient.

        Returns:
            tuple | None: (x, out, logdet) with x a leaf; None for a plain step (nothing to share).
        """
        if not self.conditional or cond is None or torch.is_tensor(cond):
            return None
        k = self.coupling.num_kept
        z1 = y[:, :k].detach().requires_grad_()
        cond_term = cond[1].detach().requires_grad_(cond[1].requires_grad)  # its own graph: f's inputs are leaves
        h = self.coupling.net(z1, cond_term)
        before_coupling = self._layers(cond)[:-1]  # ActNorm, 1x1 convolution, injector
        with torch.no_grad():
            x = self.coupling.uncouple(y, *affine_params(h.detach()))[0]
            for layer, layer_cond in reversed(before_coupling):
                x = layer.inverse(x, layer_cond)[0]
        x = x.detach().requires_grad_(input_grad)
        h_in, logdet = x, 0
        for layer, layer_cond in before_coupling:
            h_in, layer_logdet = layer(h_in, layer_cond)
            logdet = logdet + layer_logdet
        params = [p for p in self.coupling.net.parameters() if p.requires_grad]
        shared = _SharedEvaluation.apply((h, [z1, cond_term] + params), h_in[:, :k], cond[1], *params)
        out, coupling_logdet = self.coupling.couple(h_in, *affine_params(shared))
        return x, out, logdet + coupling_logdet

    def fast_inverse(self, y: torch.Tensor, cond: Union[StepCondition, torch.Tensor] = None) -> torch.Tensor:
        """``inverse(y, cond)[0]`` with less work, for sampling in eval mode (train mode runs :meth:`inverse`, whose
        layers may still initialise): no log-dets, sub-networks with their ActNorms folded into the convolutions,
        and the 1x1 convolution's inverse and the ActNorm inverse as one convolution. Same output to float
        rounding."""
        if self.training:
            return self.inverse(y, cond)[0]
        if self.conditional:
            if torch.is_tensor(cond):
                cond = self.prepare_condition(cond)
            y = self.injector.fast_inverse(self.coupling.fast_inverse(y, cond[1]), cond[0])
        inverse = self.invconv.inverse_and_logabsdet()[0] * torch.exp(-self.actnorm.logs).view(-1, 1)
        c = inverse.shape[0]
        with full_precision(y):
            return F.conv2d(y, inverse.view(c, c, 1, 1), -self.actnorm.bias.view(-1))


class Split(InvertibleLayer):
    """Standardises the second half of the channels with a Gaussian predicted from the first half.

    forward: cat([z1, z2]) -> cat([z1, eps]) with eps = (z2 - mean(z1)) / exp(logs(z1)), so that the log-density
    of z2 under N(mean, exp(logs)^2) equals the log-det returned here plus log N(eps; 0, I), which the network
    adds for every latent. z1 has the first C // 2 channels.

    Args:
        num_channels (int): Channels of z before the split.
    """

    def __init__(self, num_channels: int):
        super().__init__()
        self.num_kept = num_channels // 2
        self.conv = ZeroConv2d(self.num_kept, 2 * (num_channels - self.num_kept))

    def _prior(self, z1):
        with full_precision(z1):
            h = self.conv(z1)
        return h[:, 0::2], h[:, 1::2]

    def forward(self, x: torch.Tensor, cond: Any = None) -> Tuple[torch.Tensor, torch.Tensor]:
        z1, z2 = x[:, :self.num_kept], x[:, self.num_kept:]
        mean, logs = self._prior(z1)
        return torch.cat([z1, (z2 - mean) * torch.exp(-logs)], 1), -logs.flatten(1).sum(1)

    def inverse(self, y: torch.Tensor, cond: Any = None) -> Tuple[torch.Tensor, torch.Tensor]:
        z1, eps = y[:, :self.num_kept], y[:, self.num_kept:]
        mean, logs = self._prior(z1)
        return torch.cat([z1, mean + torch.exp(logs) * eps], 1), logs.flatten(1).sum(1)
