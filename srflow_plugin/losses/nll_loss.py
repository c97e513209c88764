"""Negative log-likelihood loss of a normalizing flow."""
import math
from typing import Optional

import torch
from basicsr.utils.registry import LOSS_REGISTRY
from torch import nn

from srflow_plugin.utils import register

_REDUCTIONS = ('none', 'mean', 'sum')


@register(LOSS_REGISTRY)
class FlowNLLLoss(nn.Module):
    """Negative log-likelihood in bits per dimension, as returned by ``SRFlowNet.encode``.

    The network returns the NLL of the continuous density. When the GT is dequantised (``dequantize``
    adds uniform noise of one quantisation bin, width 1/q), the NLL of the discrete image is that value
    plus log2(q) per dimension: the probability of a bin is the density times the bin volume (1/q)^D.
    The SRFlow release added -ln(q) * H * W to the log-determinant, which is log2(q) per *pixel*, i.e.
    only a third of the correct constant for 3-channel images; this loss uses the correct one.
    The constant does not change the gradients, only the reported value.

    Args:
        loss_weight (float): Multiplies the loss. Default: 1.0.
        quantization (int | None): Number of quantisation levels q of the data (e.g. 256, or 32 as in the
            release's dequantisation option). None: no dequantisation and no constant. Default: None.
        reduction (str): 'none' | 'mean' | 'sum' over the batch. Default: 'mean'.
    """

    def __init__(self, loss_weight: float = 1.0, quantization: Optional[int] = None, reduction: str = 'mean'):
        super().__init__()
        if reduction not in _REDUCTIONS:
            raise ValueError(f'FlowNLLLoss: unsupported reduction {reduction!r}; use one of {_REDUCTIONS}.')
        if quantization is not None and not quantization > 0:
            raise ValueError(f'FlowNLLLoss: quantization must be a positive number of levels, got {quantization}.')
        self.loss_weight = loss_weight
        self.quantization = quantization
        self.reduction = reduction

    @property
    def constant(self) -> float:
        """Bits per dimension added for the dequantisation noise: log2(q), or 0."""
        return math.log2(self.quantization) if self.quantization else 0.0

    def dequantize(self, gt: torch.Tensor, generator: Optional[torch.Generator] = None) -> torch.Tensor:
        """Add uniform noise (U[0, 1) - 0.5) / q to images in [0, 1]; unchanged when quantization is None."""
        if not self.quantization:
            return gt
        noise = torch.rand(gt.shape, generator=generator, device=gt.device, dtype=gt.dtype)
        return gt + (noise - 0.5) / self.quantization

    def forward(self, nll: torch.Tensor) -> torch.Tensor:
        """
        Args:
            nll (Tensor): NLL per sample [B], bits per dimension of the continuous density.

        Returns:
            Tensor: the weighted loss (a scalar, or [B] with reduction 'none').
        """
        loss = nll + self.constant
        if self.reduction == 'mean':
            loss = loss.mean()
        elif self.reduction == 'sum':
            loss = loss.sum()
        return self.loss_weight * loss
