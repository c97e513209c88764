"""CouplingFlowNet: the conditional flow of the flow-versus-GAN study (affine couplings, BatchNorm, PReLU).

Its layers are :class:`~srflow_plugin.archs.flow_base.InvertibleLayer` s (``forward(x, cond) -> (y, logdet)``,
``inverse(y, cond) -> (x, -logdet)``, conditions prepared once per LR image by ``prepare_condition``), and the
network is a :class:`~srflow_plugin.archs.flow_base.ConditionalFlowNet` like SRFlowNet (``condition`` / ``encode`` /
``decode`` / ``draw_latents``), so SRFlowModel trains and validates it and the sampling code can drive it.
"""
from dataclasses import dataclass
from typing import Any, List, Optional, Tuple

import torch
from basicsr.utils.registry import ARCH_REGISTRY
from torch import nn as nn
from torch.nn import functional as F

from srflow_plugin.archs.arch_util import check_scale
from srflow_plugin.utils import register
from .flow_base import ConditionalFlowNet, InvertibleLayer
from .flow_layers import AffineCouplingLayer, InvertibleConv1x1, Squeeze


class InvertibleBatchNorm(InvertibleLayer):
    """BatchNorm as a flow layer (Real NVP): y = (x - mean) / sqrt(var + eps) * exp(log_scale) + bias.

    Training mode normalises with the statistics of the batch (over batch and space, per channel), returns their
    log-determinant (the statistics are treated as constants, as in Real NVP) and updates running statistics with
    ``momentum``. Eval mode uses the running statistics: an exact, fixed affine map, whose inverse this layer
    computes exactly. :meth:`inverse` always uses the running statistics (a batch of latents has no statistics
    of the HR images), so in training mode it inverts the eval-mode forward. Under DDP each process uses its own
    batch statistics, like ``nn.BatchNorm2d``.

    Args:
        num_channels (int): Channels of the input.
        momentum (float): Weight of the newest batch in the running statistics. Default: 0.1.
        eps (float): Added to the variance. Default: 1e-5.
    """

    def __init__(self, num_channels: int, momentum: float = 0.1, eps: float = 1e-5):
        super().__init__()
        self.momentum, self.eps = momentum, eps
        self.log_scale = nn.Parameter(torch.zeros(1, num_channels, 1, 1))
        self.bias = nn.Parameter(torch.zeros(1, num_channels, 1, 1))
        self.register_buffer('running_mean', torch.zeros(1, num_channels, 1, 1))
        self.register_buffer('running_var', torch.ones(1, num_channels, 1, 1))

    def _statistics(self, x):
        if not self.training:
            return self.running_mean, self.running_var
        mean = x.mean((0, 2, 3), keepdim=True)
        var = x.var((0, 2, 3), keepdim=True, unbiased=False)
        with torch.no_grad():
            self.running_mean.lerp_(mean.detach(), self.momentum)
            self.running_var.lerp_(var.detach(), self.momentum)
        return mean, var

    def _logdet(self, var, x):
        per_pixel = (self.log_scale - 0.5 * torch.log(var + self.eps)).sum()
        return (per_pixel * (x.shape[2] * x.shape[3])).reshape(1).expand(x.shape[0])

    def forward(self, x: torch.Tensor, cond: Any = None) -> Tuple[torch.Tensor, torch.Tensor]:
        mean, var = self._statistics(x)
        y = (x - mean) * torch.rsqrt(var + self.eps) * torch.exp(self.log_scale) + self.bias
        return y, self._logdet(var, x)

    def inverse(self, y: torch.Tensor, cond: Any = None) -> Tuple[torch.Tensor, torch.Tensor]:
        mean, var = self.running_mean, self.running_var
        x = (y - self.bias) * torch.exp(-self.log_scale) * torch.sqrt(var + self.eps) + mean
        return x, -self._logdet(var, y)


class CouplingSubNet(nn.Module):
    """conv3x3 on cat([x, cond]) -> PReLU -> ``hidden_layers`` x (conv3x3 -> PReLU) -> conv3x3 (zero-initialised).

    The first convolution is linear, so its response to the condition is computed apart (:meth:`condition_term`)
    and reused for every sample drawn for the same LR image.

    Args:
        in_channels (int): Channels of x (the kept half of z).
        cond_channels (int): Channels of the conditioning features.
        out_channels (int): Output channels (shift and scale of the other half).
        hidden_channels (int): Width.
        hidden_layers (int): Convolutions between the first and the last.
    """

    def __init__(self, in_channels: int, cond_channels: int, out_channels: int, hidden_channels: int,
                 hidden_layers: int):
        super().__init__()
        self.in_channels = in_channels
        self.conv_first = nn.Conv2d(in_channels + cond_channels, hidden_channels, 3, 1, 1)
        self.act_first = nn.PReLU(hidden_channels)
        hidden = []
        for _ in range(hidden_layers):
            hidden += [nn.Conv2d(hidden_channels, hidden_channels, 3, 1, 1), nn.PReLU(hidden_channels)]
        self.hidden = nn.Sequential(*hidden)
        self.conv_last = nn.Conv2d(hidden_channels, out_channels, 3, 1, 1)
        nn.init.zeros_(self.conv_last.weight)
        nn.init.zeros_(self.conv_last.bias)

    def condition_term(self, cond: torch.Tensor) -> torch.Tensor:
        """The first convolution's response to the conditioning features (with its bias)."""
        return F.conv2d(cond, self.conv_first.weight[:, self.in_channels:], self.conv_first.bias, padding=1)

    def forward(self, x: torch.Tensor, cond_term: torch.Tensor) -> torch.Tensor:
        h = F.conv2d(x, self.conv_first.weight[:, :self.in_channels], padding=1) + cond_term
        return self.conv_last(self.hidden(self.act_first(h)))


class AffineCoupling(AffineCouplingLayer):
    """z2 = (z2 + shift(z1, u)) * scale(z1, u), z1 = the first C // 2 channels, kept as they are; the sub-network is
    a :class:`CouplingSubNet` (the coupling itself is :class:`AffineCouplingLayer`'s).

    Args:
        num_channels (int): Channels of z.
        cond_channels (int): Channels of the conditioning features u.
        hidden_channels (int): Width of the sub-network.
        hidden_layers (int): Hidden convolutions of the sub-network.
    """

    def __init__(self, num_channels: int, cond_channels: int, hidden_channels: int, hidden_layers: int):
        super().__init__()
        self.num_kept = num_channels // 2
        self.net = CouplingSubNet(self.num_kept, cond_channels, 2 * (num_channels - self.num_kept), hidden_channels,
                                  hidden_layers)


class CouplingFlowStep(InvertibleLayer):
    """Invertible BatchNorm -> invertible 1x1 conv -> conditional affine coupling.

    Args:
        num_channels (int): Channels of z.
        cond_channels (int): Channels of the conditioning features.
        hidden_channels (int): Width of the coupling's sub-network.
        hidden_layers (int): Hidden convolutions of the sub-network.
    """

    def __init__(self, num_channels: int, cond_channels: int, hidden_channels: int, hidden_layers: int):
        super().__init__()
        self.norm = InvertibleBatchNorm(num_channels)
        self.invconv = InvertibleConv1x1(num_channels)
        self.coupling = AffineCoupling(num_channels, cond_channels, hidden_channels, hidden_layers)

    def prepare_condition(self, u: torch.Tensor) -> torch.Tensor:
        return self.coupling.prepare_condition(u)

    def forward(self, x: torch.Tensor, cond: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        x, logdet_norm = self.norm(x)
        x, logdet_conv = self.invconv(x)
        x, logdet_coupling = self.coupling(x, cond)
        return x, logdet_norm + logdet_conv + logdet_coupling

    def inverse(self, y: torch.Tensor, cond: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        y, logdet_coupling = self.coupling.inverse(y, cond)
        y, logdet_conv = self.invconv.inverse(y)
        y, logdet_norm = self.norm.inverse(y)
        return y, logdet_norm + logdet_conv + logdet_coupling


@dataclass
class CouplingFlowCondition:
    """What the flow needs from one batch of LR images, computed once by :meth:`CouplingFlowNet.condition`.

    Attributes:
        features: conditioning features at the flow's resolution (HR / 2).
        step_conds: per step, its prepared condition; None when not precomputed (each step prepares it as it runs).
        lq_size: (h, w) of the LR images.
        batch: number of LR images.
    """
    features: torch.Tensor
    step_conds: Optional[List[torch.Tensor]]
    lq_size: Tuple[int, int]
    batch: int


@register(ARCH_REGISTRY)
class CouplingFlowNet(ConditionalFlowNet):
    """p(HR | LR) as one squeeze and a chain of conditional affine couplings, the flow of the flow-versus-GAN study.

    The HR image is squeezed once (``4 * in_channels`` channels at HR / 2) and passes ``num_couplings`` steps of
    invertible BatchNorm (instead of ActNorm), invertible 1x1 convolution and an affine coupling whose sub-network
    (3x3 convolutions, PReLU) sees the kept half of z and the conditioning features; the result is the latent,
    N(0, I) under the model. The conditioning network is deliberately light, so that cost and receptive field come
    from the couplings, as in the GAN they come from its body: conv3x3 + PReLU at LR, then conv1x1 to
    ``cond_channels * (scale / 2)^2`` channels, pixel shuffle by scale / 2 (to HR / 2) and PReLU.

    The defaults match ``SRResNet()`` (the study's SRGAN generator) within 10 % in multiply-accumulates per HR
    pixel and in receptive field (``srflow-complexity`` prints both). The study's table lists sub-networks of
    width 64 with three hidden convolutions (``hidden_channels=64, hidden_layers=3``); at HR / 2, the one
    resolution where 12-channel couplings cover the whole image, that costs about 4.7x the GAN and sees about
    1.7x as far, so the matched defaults keep the 16 couplings, 3x3 convolutions, BatchNorm and PReLU and use
    narrower, shallower sub-networks (one hidden convolution of width 40).

    Args:
        scale (int): 2, 4 or 8. Default: 4.
        in_channels (int): Image channels. Default: 3.
        num_couplings (int): Flow steps (each BatchNorm, 1x1 conv, coupling). Default: 16.
        hidden_channels (int): Width of the coupling sub-networks. Default: 40.
        hidden_layers (int): Hidden 3x3 convolutions per sub-network (besides first and last). Default: 1.
        cond_channels (int): Channels of the conditioning features. Default: 8.
        cond_hidden (int): Width of the conditioning network's first convolution. Default: 16.
    """

    def __init__(self, scale: int = 4, in_channels: int = 3, num_couplings: int = 16, hidden_channels: int = 40,
                 hidden_layers: int = 1, cond_channels: int = 8, cond_hidden: int = 16):
        super().__init__()
        self.scale = check_scale('CouplingFlowNet', scale)
        self.in_channels = in_channels
        self.num_channels = 4 * in_channels
        shuffle = scale // 2
        self.conditioner = nn.Sequential(
            nn.Conv2d(in_channels, cond_hidden, 3, 1, 1), nn.PReLU(cond_hidden),
            nn.Conv2d(cond_hidden, cond_channels * shuffle**2, 1), nn.PixelShuffle(shuffle),
            nn.PReLU(cond_channels))
        self.squeeze = Squeeze()
        self.steps = nn.ModuleList(
            CouplingFlowStep(self.num_channels, cond_channels, hidden_channels, hidden_layers)
            for _ in range(num_couplings))

    def latent_shapes(self, lq_h: int, lq_w: int) -> List[Tuple[int, int, int]]:
        """(C, H, W) of the one latent for an LR image of lq_h x lq_w."""
        return [(self.num_channels, lq_h * self.scale // 2, lq_w * self.scale // 2)]

    def condition(self, lq: torch.Tensor, precompute: bool = True) -> 'CouplingFlowCondition':
        """Everything that depends on the LR images only.

        Args:
            lq (Tensor): LR images [B, C, h, w] in [0, 1].
            precompute (bool): Also prepare every step's first-layer response to the features now (reused by all
                samples); False prepares them as each step runs. Same results. Default: True.

        Returns:
            CouplingFlowCondition: pass it as ``cond=`` to :meth:`encode` / :meth:`decode`.
        """
        self._check_image('lq', lq)
        features = self.conditioner(lq)
        step_conds = [step.prepare_condition(features) for step in self.steps] if precompute else None
        return CouplingFlowCondition(features, step_conds, tuple(lq.shape[-2:]), lq.shape[0])

    def _step_conds(self, cond):
        if cond.step_conds is not None:
            return cond.step_conds
        return (step.prepare_condition(cond.features) for step in self.steps)

    def _flow_forward(self, gt, cond):
        z, logdet = self.squeeze(gt)
        for step, step_cond in zip(self.steps, self._step_conds(cond)):
            z, step_logdet = step(z, step_cond)
            logdet = logdet + step_logdet
        return [z], logdet

    def _flow_inverse(self, latents, cond):
        z = latents[0]
        for step, step_cond in reversed(list(zip(self.steps, self._step_conds(cond)))):
            z = step.inverse(z, step_cond)[0]
        return self.squeeze.inverse(z)[0]
