"""SRResNet: the generator of SRGAN (Ledig et al., CVPR 2017), as used by the flow-versus-GAN study."""
import math

import torch
from basicsr.utils.registry import ARCH_REGISTRY
from torch import nn as nn

from srflow_plugin.archs.arch_util import check_scale
from srflow_plugin.utils import register


class BNResidualBlock(nn.Module):
    """conv3x3 - BN - PReLU - conv3x3 - BN, plus the input.

    Args:
        num_feat (int): Channels.
    """

    def __init__(self, num_feat: int):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(num_feat, num_feat, 3, 1, 1), nn.BatchNorm2d(num_feat), nn.PReLU(num_feat),
            nn.Conv2d(num_feat, num_feat, 3, 1, 1), nn.BatchNorm2d(num_feat))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


@register(ARCH_REGISTRY)
class SRResNet(nn.Module):
    """The SRGAN generator: 9x9 head conv + PReLU, residual blocks with BatchNorm, post-body conv + BN with the long
    skip, x2 pixel-shuffle stages with PReLU, 9x9 tail conv.

    This is not BasicSR's ``MSRResNet`` (the "modified SRResNet" of ESRGAN/BasicSR), which drops BatchNorm, uses
    LeakyReLU/ReLU, 3x3 head and tail convolutions, no post-body conv and adds a bilinear-upsampled input; this
    class is the network of the SRGAN paper. The defaults (``num_block=8``) give the flow-versus-GAN study's 17
    3x3 convolutions of 64 -> 64 channels (16 in the blocks, one after them); the SRGAN paper used 16 blocks.

    Args:
        num_in_ch (int): Input channels. Default: 3.
        num_out_ch (int): Output channels. Default: 3.
        num_feat (int): Feature channels. Default: 64.
        num_block (int): Residual blocks (two 3x3 convolutions each). Default: 8.
        upscale (int): 2, 4 or 8: log2(upscale) pixel-shuffle stages. Default: 4.
    """

    def __init__(self, num_in_ch: int = 3, num_out_ch: int = 3, num_feat: int = 64, num_block: int = 8,
                 upscale: int = 4):
        super().__init__()
        self.scale = check_scale('SRResNet', upscale, 'upscale')
        self.conv_first = nn.Sequential(nn.Conv2d(num_in_ch, num_feat, 9, 1, 4), nn.PReLU(num_feat))
        self.body = nn.Sequential(*[BNResidualBlock(num_feat) for _ in range(num_block)])
        self.conv_body = nn.Sequential(nn.Conv2d(num_feat, num_feat, 3, 1, 1), nn.BatchNorm2d(num_feat))
        upsample = []
        for _ in range(int(math.log2(upscale))):
            upsample += [nn.Conv2d(num_feat, num_feat * 4, 3, 1, 1), nn.PixelShuffle(2), nn.PReLU(num_feat)]
        self.upsample = nn.Sequential(*upsample)
        self.conv_last = nn.Conv2d(num_feat, num_out_ch, 9, 1, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feat = self.conv_first(x)
        feat = feat + self.conv_body(self.body(feat))
        return self.conv_last(self.upsample(feat))
