"""SRFlowNet: an RRDB encoder conditioning a multi-level Glow-style flow (Lugmayr et al., ECCV 2020)."""
import math
from dataclasses import dataclass
from typing import List, Tuple, Union

import torch
from basicsr.utils.registry import ARCH_REGISTRY
from torch import nn as nn
from torch.nn import functional as F

from srflow_plugin.utils import register
from .flow_layers import FlowStep, Split, Squeeze, standard_normal_logp
from .invertible_backprop import run_invertible_chain
from .rrdb_arch import SRFlowRRDBNet


AMP_DTYPES = {None: None, 'bf16': torch.bfloat16, 'fp16': torch.float16}


def mixed_precision(net, precision=None):
    """``torch.autocast`` on the device of ``net``'s parameters: ``'bf16'``, ``'fp16'``, or None (float32, a no-op).

    In SRFlowNet only the encoder and the affine sub-networks run in lower precision under it; the flow's own
    arithmetic (log-dets, ActNorm, the 1x1 convolutions and their inverses, the split prior, all sums) turns
    autocast off and stays float32 (:func:`flow_layers.full_precision`).
    """
    if precision not in AMP_DTYPES:
        raise ValueError(f"mixed precision must be one of {list(AMP_DTYPES)}, got {precision!r}")
    device_type = next(net.parameters()).device.type
    return torch.autocast(device_type, dtype=AMP_DTYPES[precision], enabled=precision is not None)


class FlowLevel(nn.Module):
    """One resolution of the flow: squeeze, plain steps, conditional steps and an optional split.

    Args:
        in_channels (int): Channels entering the level (before the squeeze).
        cond_channels (int): Channels of the LR features conditioning this level.
        plain_steps (int): Steps with ActNorm and 1x1 conv only.
        flow_steps (int): Conditional steps (K).
        hidden_channels (int): Width of the sub-networks.
        split (bool): Whether half of the channels leave the flow here as a latent.
    """

    def __init__(self, in_channels, cond_channels, plain_steps, flow_steps, hidden_channels, split):
        super().__init__()
        channels = in_channels * 4
        self.squeeze = Squeeze()
        self.steps = nn.ModuleList([FlowStep(channels) for _ in range(plain_steps)] +
                                   [FlowStep(channels, cond_channels, hidden_channels) for _ in range(flow_steps)])
        self.split = Split(channels) if split else None
        self.out_channels = self.split.num_kept if split else channels
        self.latent_channels = channels - self.out_channels

    def prepare_condition(self, u):
        return [step.prepare_condition(u) for step in self.steps]

    def _step_condition(self, index, cond):
        """The prepared condition of step ``index``, or the level's features u (the step prepares it then)."""
        return cond[index] if isinstance(cond, list) else cond

    def forward(self, z, cond, memory_saving=False):
        """Returns (z for the next level, latent leaving here or None, log-det).

        ``memory_saving``: backpropagate by reconstructing every step's input from its output instead of storing
        it (:func:`run_invertible_chain`); used when ``cond`` holds the level's features u, as in training.
        """
        layers = [self.squeeze, *self.steps] + ([self.split] if self.split is not None else [])
        if isinstance(cond, list):
            conds = [None] + cond + [None]
            logdet = 0
            for layer, layer_cond in zip(layers, conds):
                z, layer_logdet = layer(z, layer_cond)
                logdet = logdet + layer_logdet
        else:
            z, logdet = run_invertible_chain(layers, z, cond, memory_saving)
        if self.split is None:
            return z, None, logdet
        return z[:, :self.out_channels], z[:, self.out_channels:], logdet

    def inverse(self, z, latent, cond):
        if self.split is not None:
            z = self.split.inverse(torch.cat([z, latent], 1))[0]
        for index in reversed(range(len(self.steps))):
            z = self.steps[index].reverse(z, self._step_condition(index, cond))
        return self.squeeze.inverse(z)[0]


class NoiseLevelEmbedding(nn.Module):
    """Gives the flow the standard deviation of the Gaussian noise added to the HR image (noise conditioning,
    SoftFlow / NCSR): each level's conditioning features u become ``u * (1 + level * gain) + level * bias``, with
    ``level`` the noise std in 8-bit gray levels (std * 255), one per image. Gain and bias start at zero; at level 0
    the features pass unchanged, bit for bit, so a network trained without noise behaves as before.

    Args:
        cond_channels (int): Channels of the conditioning features.
        num_levels (int): Flow levels (one gain and bias per level).
    """

    GRAY_LEVELS = 255.0

    def __init__(self, cond_channels, num_levels):
        super().__init__()
        self.gain = nn.Parameter(torch.zeros(num_levels, cond_channels))
        self.bias = nn.Parameter(torch.zeros(num_levels, cond_channels))

    def forward(self, features, noise_std):
        """``features``: one [B, C, H, W] tensor per level; ``noise_std``: [B] (or a float) in image units [0, 1]."""
        level = torch.as_tensor(noise_std, dtype=features[0].dtype, device=features[0].device)
        level = (level * self.GRAY_LEVELS).reshape(-1, 1, 1, 1)
        return [u * (1 + level * gain.view(1, -1, 1, 1)) + level * bias.view(1, -1, 1, 1)
                for u, gain, bias in zip(features, self.gain, self.bias)]


@dataclass
class SRFlowCondition:
    """Everything the flow needs from one batch of LR images, computed once by :meth:`SRFlowNet.condition`.

    Attributes:
        level_conds: per level, the list of prepared step conditions, or (``precompute=False``) the level's
            conditioning features, from which each step prepares its condition when it runs.
        lq_size: (h, w) of the LR images as given.
        padded_size: (h, w) after reflect padding to a size the flow divides.
        batch: number of LR images.
    """
    level_conds: List[Union[list, torch.Tensor]]
    lq_size: Tuple[int, int]
    padded_size: Tuple[int, int]
    batch: int


@register(ARCH_REGISTRY)
class SRFlowNet(nn.Module):
    """SRFlow: p(HR | LR) as a conditional normalizing flow on the HR image, conditioned on RRDB features.

    Level l = 1..L (L = log2(scale) + 1) works at HR / 2^l and is conditioned on the encoder feature of the same
    resolution, concatenated with the tapped trunk blocks resized to it. Levels l < L - 1 end with a split.

    Args:
        scale (int): 2, 4 or 8. Default: 4.
        in_channels (int): Image channels. Default: 3.
        num_feat (int): Encoder feature channels. Default: 64.
        num_block (int): Encoder RRDB blocks. Default: 23.
        num_grow_ch (int): Encoder growth channels. Default: 32.
        tap_blocks (Sequence[int]): 0-based encoder blocks whose outputs condition the flow, concatenated in this
            order (repeats allowed). Default: (1, 8, 15, 22), the released x4 model.
        flow_steps (int): Conditional flow steps per level (K). Default: 16.
        plain_steps (int): Unconditional steps (ActNorm + 1x1 conv) at the start of each level. Default: 2.
        hidden_channels (int): Width of the affine sub-networks. Default: 64.
        trunk_skip (str): The encoder's long skip, ``'conv_first'`` (ESRGAN/BasicSR RRDBNet) or ``'trunk'`` (the
            SRFlow release, needed for its checkpoints); see :class:`SRFlowRRDBNet`. Default: ``'conv_first'``.
        noise_conditioning (bool): Condition the flow on the std of Gaussian noise added to the HR image
            (:class:`NoiseLevelEmbedding`; ``noise_std`` of :meth:`condition`, 0 when not given). Trained with
            ``train.noise_conditioning``. Default: False (the release's network).

    Attributes:
        memory_saving (bool): Training switch (``train.memory_saving``), off by default: :meth:`encode` then keeps
            no flow activations for backward (each step's input is reconstructed from its output with the exact
            inverse, :func:`run_invertible_chain`) and checkpoints the encoder's RRDB blocks. Same gradients.
    """

    def __init__(self,
                 scale=4,
                 in_channels=3,
                 num_feat=64,
                 num_block=23,
                 num_grow_ch=32,
                 tap_blocks=(1, 8, 15, 22),
                 flow_steps=16,
                 plain_steps=2,
                 hidden_channels=64,
                 trunk_skip='conv_first',
                 noise_conditioning=False):
        super().__init__()
        if scale not in (2, 4, 8):
            raise ValueError(f'SRFlowNet supports scale 2, 4 or 8, got scale={scale}')
        bad_taps = [b for b in tap_blocks if not 0 <= b < num_block]
        if bad_taps:
            raise ValueError(f'tap_blocks {list(tap_blocks)} name blocks outside the encoder\'s 0..{num_block - 1}')
        self.scale = scale
        self.in_channels = in_channels
        self.tap_blocks = tuple(tap_blocks)
        self.encoder = SRFlowRRDBNet(in_channels, in_channels, scale, num_feat, num_block, num_grow_ch, trunk_skip)
        self.num_levels = int(math.log2(scale)) + 1
        cond_channels = num_feat * (1 + len(self.tap_blocks))
        levels, channels = [], in_channels
        for level in range(1, self.num_levels + 1):
            levels.append(
                FlowLevel(channels, cond_channels, plain_steps, flow_steps, hidden_channels,
                          split=level < self.num_levels - 1))
            channels = levels[-1].out_channels
        self.levels = nn.ModuleList(levels)
        self.noise_embedding = NoiseLevelEmbedding(cond_channels, self.num_levels) if noise_conditioning else None
        self.memory_saving = False

    # ---------------------------------------------------------------- shapes and inputs
    @staticmethod
    def padded_lq_size(lq_h, lq_w):
        """LR size after reflect padding at the bottom/right to a multiple of 2 (the coarsest level is LR / 2)."""
        return lq_h + lq_h % 2, lq_w + lq_w % 2

    def latent_shapes(self, lq_h, lq_w):
        """(C, H, W) of each latent [split latents..., top latent] for an LR image of size lq_h x lq_w."""
        h, w = self.padded_lq_size(lq_h, lq_w)
        h, w = h * self.scale, w * self.scale
        shapes = []
        for level in self.levels:
            h, w = h // 2, w // 2
            if level.split is not None:
                shapes.append((level.latent_channels, h, w))
        shapes.append((self.levels[-1].out_channels, h, w))
        return shapes

    def _check_image(self, name, x):
        if x.dim() != 4 or x.shape[1] != self.in_channels:
            raise ValueError(f'{name} must be [B, {self.in_channels}, H, W], got shape {tuple(x.shape)}')

    def autocast(self, precision=None):
        """Context manager for mixed precision: ``'bf16'`` or ``'fp16'``, None for float32 (:func:`mixed_precision`)."""
        return mixed_precision(self, precision)

    # ---------------------------------------------------------------- conditioning
    def _level_features(self, lq):
        checkpoint_blocks = self.memory_saving and self.encoder.training  # (eval mode while frozen)
        lr_feat, upsampled, taps = self.encoder.features(lq, self.tap_blocks, num_up=self.num_levels - 2,
                                                         checkpoint_blocks=checkpoint_blocks)
        # level l works at LR * scale / 2^l: the upsampled features from the finest down, then LR, then LR / 2
        half = F.interpolate(lr_feat, scale_factor=0.5, mode='bilinear', align_corners=False,
                             recompute_scale_factor=True)
        features = upsampled[::-1] + [lr_feat, half]
        if taps is None:
            return features
        return [torch.cat([f, F.interpolate(taps, size=f.shape[-2:], mode='nearest')], 1) for f in features]

    def condition(self, lq, precompute=True, noise_std=None):
        """Computes everything that depends only on the LR images (encoder, and the flow's LR-only parts).

        Args:
            lq (Tensor): LR images [B, C, h, w] in [0, 1]. Odd sizes are reflect-padded at the bottom/right.
            precompute (bool): Also compute every flow step's LR-only part now (each injector's shift and scale,
                each coupling's first-layer response), so that samples only run what depends on the latents. This
                holds about 2.1 KB per HR pixel in float32 for the released configurations (5.4 GiB for a
                2040x1356 output); False keeps only the encoder features of each level (about 0.4 KB per HR
                pixel) and lets each step prepare its part when it runs. Same results either way. Default: True.

        Returns:
            SRFlowCondition: pass it as ``cond=`` to :meth:`encode` / :meth:`decode`, as often as wanted.
        """
        self._check_image('lq', lq)
        lq_size = tuple(lq.shape[-2:])
        padded = self.padded_lq_size(*lq_size)
        if min(lq_size) < 2:
            raise ValueError(f'lq must be at least 2x2 pixels, got shape {tuple(lq.shape)}')
        if padded != lq_size:
            lq = F.pad(lq, (0, padded[1] - lq_size[1], 0, padded[0] - lq_size[0]), mode='reflect')
        features = self._level_features(lq)
        if noise_std is not None:
            if self.noise_embedding is None:
                raise ValueError('noise_std was given, but this SRFlowNet was built without noise_conditioning')
            features = self.noise_embedding(features, noise_std)
        conds = [level.prepare_condition(u) for level, u in zip(self.levels, features)] if precompute else features
        return SRFlowCondition(conds, lq_size, padded, lq.shape[0])

    def _resolve_condition(self, lq, cond, noise_std=None):
        if cond is None:
            if lq is None:
                raise ValueError('give the LR images (lq) or a precomputed condition (cond)')
            # used once: preparing steps ahead only costs memory
            return self.condition(lq, precompute=False, noise_std=noise_std)
        if noise_std is not None:
            raise ValueError('give noise_std to condition(), which made cond, not with cond')
        return cond

    # ---------------------------------------------------------------- encode: HR -> latents
    def encode(self, gt, lq=None, cond=None, noise_std=None):
        """Maps HR images to their latents and negative log-likelihood under the model.

        Args:
            gt (Tensor): HR images [B, C, scale*h, scale*w] in [0, 1].
            lq (Tensor): LR images [B, C, h, w] (or give ``cond``).
            cond (SRFlowCondition): Precomputed condition of the LR images.
            noise_std (Tensor | float): With ``lq``: the std of the noise added to ``gt`` (noise conditioning).

        Returns:
            tuple: (latents, nll): latents is the list of standardised latents [split latents..., top latent]
            (each ~ N(0, I) under the model), nll the negative log-likelihood in bits per dimension, shape [B].
        """
        self._check_image('gt', gt)
        cond = self._resolve_condition(lq, cond, noise_std)
        expected = (cond.lq_size[0] * self.scale, cond.lq_size[1] * self.scale)
        if tuple(gt.shape[-2:]) != expected:
            raise ValueError(f'gt of shape {tuple(gt.shape)} is not {self.scale}x the LR size {cond.lq_size} '
                             f'(expected {expected[0]}x{expected[1]})')
        padded = (cond.padded_size[0] * self.scale, cond.padded_size[1] * self.scale)
        if padded != expected:
            gt = F.pad(gt, (0, padded[1] - expected[1], 0, padded[0] - expected[0]), mode='reflect')
        latents, logdet = [], gt.new_zeros(gt.shape[0])
        z = gt
        for level, level_cond in zip(self.levels, cond.level_conds):
            z, latent, level_logdet = level(z, level_cond, self.memory_saving)
            logdet = logdet + level_logdet
            if latent is not None:
                latents.append(latent)
        latents.append(z)
        log_likelihood = logdet + sum(standard_normal_logp(t) for t in latents)
        nll = -log_likelihood / (math.log(2.0) * gt[0].numel())
        return latents, nll

    # ---------------------------------------------------------------- decode: latents -> HR
    def decode(self, lq=None, latents=None, temperature=0.8, generator=None, cond=None):
        """Draws (or reconstructs) HR images for the LR images.

        Args:
            lq (Tensor): LR images [B, C, h, w] (or give ``cond``).
            latents (list[Tensor]): Standardised latents as returned by :meth:`encode`, used as they are
                (``temperature`` is then ignored). Default: drawn from N(0, temperature^2).
            temperature (float): Standard deviation of the drawn latents (tau, "heat"); 0 gives the mode-like
                image. Default: 0.8.
            generator (torch.Generator): Random generator for the drawn latents, for reproducible samples.
            cond (SRFlowCondition): Precomputed condition of the LR images.

        Returns:
            Tensor: HR images [B, C, scale*h, scale*w] (not clamped).
        """
        if temperature < 0:
            raise ValueError(f'temperature must be >= 0, got {temperature}')
        cond = self._resolve_condition(lq, cond)
        if latents is None:
            latents = self.draw_latents(*cond.lq_size, temperature, generator, batch=cond.batch)
        else:
            self._check_latents(latents, self.latent_shapes(*cond.lq_size), cond.batch)
        split_latents = iter(reversed(latents[:-1]))
        z = latents[-1]
        for level, level_cond in zip(reversed(self.levels), reversed(cond.level_conds)):
            z = level.inverse(z, next(split_latents) if level.split is not None else None, level_cond)
        return z[..., :cond.lq_size[0] * self.scale, :cond.lq_size[1] * self.scale]

    def draw_latents(self, lq_h, lq_w, temperature=0.8, generator=None, batch=1, device=None, dtype=None):
        """Latents ~ N(0, temperature^2) for an LR image of lq_h x lq_w, as :meth:`decode` draws them.

        Args:
            lq_h, lq_w (int): LR size.
            temperature (float): Standard deviation (tau). Default: 0.8.
            generator (torch.Generator): Random generator (on any device). Default: torch's global one.
            batch (int): Samples. Default: 1.
            device, dtype: Of the result. Default: those of the network's parameters.

        Returns:
            list[Tensor]: [split latents..., top latent], each [batch, C, H, W]; with equally seeded generators,
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

    def _check_latents(self, latents, shapes, batch):
        got = [tuple(t.shape[1:]) for t in latents]
        if got != shapes:
            raise ValueError(f'latents of shapes {[tuple(t.shape) for t in latents]} do not fit this LR size: '
                             f'expected [B, C, H, W] with (C, H, W) = {shapes}')
        batches = {t.shape[0] for t in latents}
        if len(batches) != 1 or (batch != 1 and batches != {batch}):
            raise ValueError(f'latents have batch sizes {sorted(batches)}; the condition has batch {batch}')

    def forward(self, lq, gt=None, noise_std=None, **decode_kwargs):
        """``net(lq, gt[, noise_std])`` is :meth:`encode`; ``net(lq, ...)`` is :meth:`decode` (kept one entry for
        DDP)."""
        if gt is not None:
            return self.encode(gt, lq, noise_std=noise_std)
        return self.decode(lq, **decode_kwargs)
