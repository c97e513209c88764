"""SRFlowNet: an RRDB encoder conditioning a multi-level Glow-style flow (Lugmayr et al., ECCV 2020)."""
import math
from dataclasses import dataclass
from typing import List, Optional, Sequence, Tuple, Union

import torch
from basicsr.utils.registry import ARCH_REGISTRY
from torch import nn as nn
from torch.nn import functional as F

from srflow_plugin.archs.arch_util import check_scale
from srflow_plugin.utils import register
from .flow_base import ConditionalFlowNet, mixed_precision
from .flow_layers import FlowStep, Split, Squeeze, StepCondition
from .invertible_backprop import run_invertible_chain
from .rrdb_arch import SRFlowRRDBNet

# mixed_precision lives in flow_base; models/ and the benchmarks import it from here
__all__ = ['FlowLevel', 'SRFlowCondition', 'SRFlowNet', 'mixed_precision']


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

    def __init__(self, in_channels: int, cond_channels: int, plain_steps: int, flow_steps: int, hidden_channels: int,
                 split: bool):
        super().__init__()
        channels = in_channels * 4
        self.squeeze = Squeeze()
        self.steps = nn.ModuleList([FlowStep(channels) for _ in range(plain_steps)] +
                                   [FlowStep(channels, cond_channels, hidden_channels) for _ in range(flow_steps)])
        self.split = Split(channels) if split else None
        self.out_channels = self.split.num_kept if split else channels
        self.latent_channels = channels - self.out_channels

    def prepare_condition(self, u: torch.Tensor) -> List[StepCondition]:
        return [step.prepare_condition(u) for step in self.steps]

    def _step_condition(self, index, cond):
        """The prepared condition of step ``index``, or the level's features u (the step prepares it then)."""
        return cond[index] if isinstance(cond, list) else cond

    def forward(self,
                z: torch.Tensor,
                cond: Union[List[StepCondition], torch.Tensor],
                memory_saving: bool = False) -> Tuple[torch.Tensor, Optional[torch.Tensor], torch.Tensor]:
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

    def inverse(self, z: torch.Tensor, latent: Optional[torch.Tensor],
                cond: Union[List[StepCondition], torch.Tensor]) -> torch.Tensor:
        if self.split is not None:
            z = self.split.inverse(torch.cat([z, latent], 1))[0]
        for index in reversed(range(len(self.steps))):
            z = self.steps[index].fast_inverse(z, self._step_condition(index, cond))
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

    def __init__(self, cond_channels: int, num_levels: int):
        super().__init__()
        self.gain = nn.Parameter(torch.zeros(num_levels, cond_channels))
        self.bias = nn.Parameter(torch.zeros(num_levels, cond_channels))

    def forward(self, features: List[torch.Tensor], noise_std: Union[torch.Tensor, float]) -> List[torch.Tensor]:
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
class SRFlowNet(ConditionalFlowNet):
    """SRFlow: p(HR | LR) as a conditional normalizing flow on the HR image, conditioned on RRDB features.

    Level l = 1..L (L = log2(scale) + 1) works at HR / 2^l and is conditioned on the encoder feature of the same
    resolution, concatenated with the tapped trunk blocks resized to it. Levels l < L - 1 end with a split.
    ``encode``, ``decode``, ``draw_latents`` and ``forward`` are those of :class:`ConditionalFlowNet`; the latents
    are [split latents..., top latent], and odd LR sizes are reflect-padded at the bottom/right inside the flow.

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

    def __init__(self, scale: int = 4, in_channels: int = 3, num_feat: int = 64, num_block: int = 23,
                 num_grow_ch: int = 32, tap_blocks: Sequence[int] = (1, 8, 15, 22), flow_steps: int = 16,
                 plain_steps: int = 2, hidden_channels: int = 64, trunk_skip: str = 'conv_first',
                 noise_conditioning: bool = False):
        super().__init__()
        check_scale('SRFlowNet', scale)
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

    # ---------------------------------------------------------------- shapes
    @staticmethod
    def padded_lq_size(lq_h: int, lq_w: int) -> Tuple[int, int]:
        """LR size after reflect padding at the bottom/right to a multiple of 2 (the coarsest level is LR / 2)."""
        return lq_h + lq_h % 2, lq_w + lq_w % 2

    def latent_shapes(self, lq_h: int, lq_w: int) -> List[Tuple[int, int, int]]:
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

    def condition(self,
                  lq: torch.Tensor,
                  precompute: bool = True,
                  noise_std: Union[torch.Tensor, float, None] = None) -> SRFlowCondition:
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

    # ---------------------------------------------------------------- the flow's two directions
    def _flow_forward(self, gt, cond):
        expected = (cond.lq_size[0] * self.scale, cond.lq_size[1] * self.scale)
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
        return latents, logdet

    def _flow_inverse(self, latents, cond):
        split_latents = iter(reversed(latents[:-1]))
        z = latents[-1]
        for level, level_cond in zip(reversed(self.levels), reversed(cond.level_conds)):
            z = level.inverse(z, next(split_latents) if level.split is not None else None, level_cond)
        return z[..., :cond.lq_size[0] * self.scale, :cond.lq_size[1] * self.scale]
