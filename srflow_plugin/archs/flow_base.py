"""The two contracts of this package's flows, as base classes.

- :class:`InvertibleLayer`: one invertible layer, ``forward(x, cond=None) -> (y, logdet)`` and its exact
  ``inverse(y, cond=None) -> (x, -logdet)`` (the layers of :mod:`.flow_layers` and :mod:`.coupling_flow_arch`).
- :class:`ConditionalFlowNet`: a network modelling p(HR | LR) (``SRFlowNet``, ``CouplingFlowNet``). It holds what
  every such network shares: ``encode`` (HR -> latents, NLL), ``decode`` (latents -> HR), ``draw_latents``,
  ``forward`` (the single entry DistributedDataParallel needs), ``autocast`` and the input checks. A subclass says
  how its flow runs (:meth:`ConditionalFlowNet.condition`, ``latent_shapes`` and the two flow passes); SRFlowModel,
  validation, the sampling code and the tools drive any subclass through this interface, and ask
  ``isinstance(net, ConditionalFlowNet)`` to tell a flow from a plain SR network.
"""
import abc
import math
from typing import Any, List, Optional, Sequence, Tuple, Union

import torch
from torch import nn as nn

AMP_DTYPES = {None: None, 'bf16': torch.bfloat16, 'fp16': torch.float16}


def mixed_precision(net: nn.Module, precision: Optional[str] = None) -> torch.autocast:
    """``torch.autocast`` on the device of ``net``'s parameters: ``'bf16'``, ``'fp16'``, or None (float32, a no-op).

    In SRFlowNet only the encoder and the affine sub-networks run in lower precision under it; the flow's own
    arithmetic (log-dets, ActNorm, the 1x1 convolutions and their inverses, the split prior, all sums) turns
    autocast off and stays float32 (:func:`flow_layers.full_precision`).
    """
    if precision not in AMP_DTYPES:
        raise ValueError(f"mixed precision must be one of {list(AMP_DTYPES)}, got {precision!r}")
    device_type = next(net.parameters()).device.type
    return torch.autocast(device_type, dtype=AMP_DTYPES[precision], enabled=precision is not None)


def standard_normal_logp(z: torch.Tensor) -> torch.Tensor:
    """log N(z; 0, I) summed over all but the batch dimension."""
    return -0.5 * (z**2 + math.log(2 * math.pi)).flatten(1).sum(1)


class InvertibleLayer(nn.Module, metaclass=abc.ABCMeta):
    """The contract of every flow layer.

    - ``forward(x, cond=None) -> (y, logdet)``: the encode direction (HR -> latents); ``logdet`` has shape [B] and
      is log|det dy/dx| per sample.
    - ``inverse(y, cond=None) -> (x, logdet)``: the exact inverse; ``logdet`` is log|det dx/dy| = -forward's.

    ``cond`` is what a conditional layer needs from the LR image; such a layer also has ``prepare_condition(u)``,
    which computes it once per LR image from the conditioning features ``u`` (a prepared condition of batch 1
    broadcasts against a batch of latents). Unconditional layers ignore ``cond``. Layers compose by a plain loop
    (``run_invertible_chain``), and ``tests/helpers/flow_check.py`` checks every one against an autograd Jacobian.
    """

    @abc.abstractmethod
    def forward(self, x: torch.Tensor, cond: Any = None) -> Tuple[torch.Tensor, torch.Tensor]:
        """x -> (y, log|det dy/dx| per sample, shape [B])."""

    @abc.abstractmethod
    def inverse(self, y: torch.Tensor, cond: Any = None) -> Tuple[torch.Tensor, torch.Tensor]:
        """y -> (x, log|det dx/dy| per sample), the exact inverse of :meth:`forward`."""


class ConditionalFlowNet(nn.Module, metaclass=abc.ABCMeta):
    """A network modelling p(HR | LR) as a conditional normalizing flow on the HR image.

    A subclass sets ``scale`` (int) and ``in_channels`` (int) in its constructor and implements
    :meth:`latent_shapes`, :meth:`condition`, :meth:`_flow_forward` and :meth:`_flow_inverse`; everything else
    (``encode``, ``decode``, ``draw_latents``, ``forward``, ``autocast``, the checks of images and latents) is
    shared. The condition returned by :meth:`condition` may hold anything the subclass needs, plus ``lq_size``
    ((h, w) of the LR images as given) and ``batch`` (their number), which the shared code reads.
    """

    scale: int
    in_channels: int

    # ---------------------------------------------------------------- what a subclass implements
    @abc.abstractmethod
    def latent_shapes(self, lq_h: int, lq_w: int) -> List[Tuple[int, int, int]]:
        """(C, H, W) of each latent, in the order :meth:`encode` returns them, for an LR image of lq_h x lq_w."""

    @abc.abstractmethod
    def condition(self, lq: torch.Tensor, precompute: bool = True) -> Any:
        """Computes everything that depends only on the LR images [B, C, h, w] in [0, 1], once, for any number of
        :meth:`encode` / :meth:`decode` calls (``cond=``). ``precompute=False`` keeps only what the flow cannot
        derive cheaply as it runs (less memory, same results)."""

    @abc.abstractmethod
    def _flow_forward(self, gt: torch.Tensor, cond) -> Tuple[List[torch.Tensor], torch.Tensor]:
        """HR images (checked against ``cond.lq_size``) -> (latents, summed log-det [B]) of the flow's layers."""

    @abc.abstractmethod
    def _flow_inverse(self, latents: List[torch.Tensor], cond) -> torch.Tensor:
        """Latents (checked against :meth:`latent_shapes`) -> HR images of ``scale`` x ``cond.lq_size``."""

    # ---------------------------------------------------------------- inputs
    def _check_image(self, name: str, x: torch.Tensor):
        if x.dim() != 4 or x.shape[1] != self.in_channels:
            raise ValueError(f'{name} must be [B, {self.in_channels}, H, W], got shape {tuple(x.shape)}')

    def _check_latents(self, latents: Sequence[torch.Tensor], cond):
        shapes = self.latent_shapes(*cond.lq_size)
        got = [tuple(t.shape[1:]) for t in latents]
        if got != shapes:
            raise ValueError(f'latents of shapes {[tuple(t.shape) for t in latents]} do not fit this LR size: '
                             f'expected [B, C, H, W] with (C, H, W) = {shapes}')
        batches = {t.shape[0] for t in latents}
        if len(batches) != 1 or (cond.batch != 1 and batches != {cond.batch}):
            raise ValueError(f'latents have batch sizes {sorted(batches)}; the condition has batch {cond.batch}')

    def _resolve_condition(self, lq: Optional[torch.Tensor], cond, **condition_kwargs):
        if cond is None:
            if lq is None:
                raise ValueError('give the LR images (lq) or a precomputed condition (cond)')
            # used once: preparing steps ahead only costs memory
            return self.condition(lq, precompute=False, **condition_kwargs)
        given = [name for name, value in condition_kwargs.items() if value is not None]  # None: not given
        if given:
            raise ValueError(f'give {", ".join(given)} to condition(), which made cond, not with cond')
        return cond

    def autocast(self, precision: Optional[str] = None) -> torch.autocast:
        """Context manager for mixed precision: ``'bf16'`` or ``'fp16'``, None for float32 (:func:`mixed_precision`)."""
        return mixed_precision(self, precision)

    # ---------------------------------------------------------------- encode: HR -> latents
    def encode(self,
               gt: torch.Tensor,
               lq: Optional[torch.Tensor] = None,
               cond: Any = None,
               **condition_kwargs) -> Tuple[List[torch.Tensor], torch.Tensor]:
        """Maps HR images to their latents and negative log-likelihood under the model.

        Args:
            gt (Tensor): HR images [B, C, scale*h, scale*w] in [0, 1].
            lq (Tensor): LR images [B, C, h, w] (or give ``cond``).
            cond: Precomputed condition of the LR images (:meth:`condition`).
            **condition_kwargs: With ``lq``: further arguments of the subclass's :meth:`condition`.

        Returns:
            tuple: (latents, nll): latents is the list of standardised latents (each ~ N(0, I) under the model,
            shapes :meth:`latent_shapes`), nll the negative log-likelihood in bits per dimension, shape [B].
        """
        self._check_image('gt', gt)
        cond = self._resolve_condition(lq, cond, **condition_kwargs)
        expected = (cond.lq_size[0] * self.scale, cond.lq_size[1] * self.scale)
        if tuple(gt.shape[-2:]) != expected:
            raise ValueError(f'gt of shape {tuple(gt.shape)} is not {self.scale}x the LR size {cond.lq_size} '
                             f'(expected {expected[0]}x{expected[1]})')
        latents, logdet = self._flow_forward(gt, cond)
        log_likelihood = logdet + sum(standard_normal_logp(t) for t in latents)
        dimensions = sum(t[0].numel() for t in latents)  # the flow keeps every dimension (of a padded image too)
        return latents, -log_likelihood / (math.log(2.0) * dimensions)

    # ---------------------------------------------------------------- decode: latents -> HR
    def decode(self,
               lq: Optional[torch.Tensor] = None,
               latents: Optional[List[torch.Tensor]] = None,
               temperature: float = 0.8,
               generator: Optional[torch.Generator] = None,
               cond: Any = None,
               **condition_kwargs) -> torch.Tensor:
        """Draws (or reconstructs) HR images for the LR images.

        Args:
            lq (Tensor): LR images [B, C, h, w] (or give ``cond``).
            latents (list[Tensor]): Standardised latents as returned by :meth:`encode`, used as they are
                (``temperature`` is then ignored). Default: drawn from N(0, temperature^2).
            temperature (float): Standard deviation of the drawn latents (tau, "heat"); 0 gives the mode-like
                image. Default: 0.8.
            generator (torch.Generator): Random generator for the drawn latents, for reproducible samples.
            cond: Precomputed condition of the LR images (:meth:`condition`).
            **condition_kwargs: With ``lq``: further arguments of the subclass's :meth:`condition`.

        Returns:
            Tensor: HR images [B, C, scale*h, scale*w] (not clamped).
        """
        if temperature < 0:
            raise ValueError(f'temperature must be >= 0, got {temperature}')
        cond = self._resolve_condition(lq, cond, **condition_kwargs)
        if latents is None:
            latents = self.draw_latents(*cond.lq_size, temperature, generator, batch=cond.batch)
        else:
            self._check_latents(latents, cond)
        return self._flow_inverse(latents, cond)

    def draw_latents(self,
                     lq_h: int,
                     lq_w: int,
                     temperature: float = 0.8,
                     generator: Optional[torch.Generator] = None,
                     batch: int = 1,
                     device: Union[str, torch.device, None] = None,
                     dtype: Optional[torch.dtype] = None) -> List[torch.Tensor]:
        """Latents ~ N(0, temperature^2) for an LR image of lq_h x lq_w, as :meth:`decode` draws them.

        Args:
            lq_h, lq_w (int): LR size.
            temperature (float): Standard deviation (tau). Default: 0.8.
            generator (torch.Generator): Random generator (on any device). Default: torch's global one.
            batch (int): Samples. Default: 1.
            device, dtype: Of the result. Default: those of the network's parameters.

        Returns:
            list[Tensor]: one [batch, C, H, W] per :meth:`latent_shapes` entry; with equally seeded generators,
            ``decode(cond=c, latents=draw_latents(...))`` equals ``decode(cond=c, temperature=..., generator=...)``.
        """
        if temperature < 0:
            raise ValueError(f'temperature must be >= 0, got {temperature}')
        param = next(self.parameters())
        device = param.device if device is None else torch.device(device)
        dtype = param.dtype if dtype is None else dtype
        draw_device = generator.device if generator is not None else device
        return [(torch.randn((batch, ) + shape, generator=generator, device=draw_device, dtype=dtype) *
                 temperature).to(device) for shape in self.latent_shapes(lq_h, lq_w)]

    def forward(self,
                lq: torch.Tensor,
                gt: Optional[torch.Tensor] = None,
                **kwargs) -> Union[Tuple[List[torch.Tensor], torch.Tensor], torch.Tensor]:
        """``net(lq, gt, ...)`` is :meth:`encode`; ``net(lq, ...)`` is :meth:`decode` (kept one entry for DDP)."""
        if gt is not None:
            return self.encode(gt, lq, **kwargs)
        return self.decode(lq, **kwargs)
