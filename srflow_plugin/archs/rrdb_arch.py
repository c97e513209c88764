"""The RRDB network (ESRGAN) as SRFlow's LR encoder, and as a plain SR network at x2, x4 and x8."""
import math
from typing import List, Optional, Sequence, Tuple

import torch
from basicsr.archs.arch_util import make_layer
from basicsr.archs.rrdbnet_arch import RRDB
from basicsr.utils.registry import ARCH_REGISTRY
from torch import nn as nn
from torch.nn import functional as F
from torch.utils.checkpoint import checkpoint

from srflow_plugin.archs.arch_util import check_scale
from srflow_plugin.utils import register

TRUNK_SKIPS = ('conv_first', 'trunk')


@register(ARCH_REGISTRY)
class SRFlowRRDBNet(nn.Module):
    """RRDB network (ESRGAN) taking the LR image as it is, for scales 2, 4 and 8.

    Same layers and names as BasicSR's ``RRDBNet`` at x4 (so its checkpoints load as they are); x2 uses one
    upsampling convolution and x8 a third one (``conv_up3``), without BasicSR's pixel-unshuffle for x2. As a plain
    SR network it can be pre-trained with BasicSR's SRModel; SRFlow uses its intermediate features (``features``).

    The SRFlow release differs from ESRGAN in one place: its long skip adds the trunk's output instead of
    ``conv_first``'s (``trunk + conv_body(trunk)``, the release's ``RRDB_*.pth`` and ``SRFlow_*.pth`` were trained
    so); ``trunk_skip`` selects which one, checked against the release's own outputs.

    Args:
        num_in_ch (int): Channel number of inputs. Default: 3.
        num_out_ch (int): Channel number of outputs. Default: 3.
        scale (int): Upsampling factor, 2, 4 or 8. Default: 4.
        num_feat (int): Channel number of intermediate features. Default: 64.
        num_block (int): Number of RRDB blocks in the trunk. Default: 23.
        num_grow_ch (int): Channels for each growth in the dense blocks. Default: 32.
        trunk_skip (str): What the long skip adds to ``conv_body(trunk)``: ``'conv_first'`` (ESRGAN, BasicSR) or
            ``'trunk'`` (the SRFlow release). Default: ``'conv_first'``.
    """

    def __init__(self, num_in_ch: int = 3, num_out_ch: int = 3, scale: int = 4, num_feat: int = 64, num_block: int = 23,
                 num_grow_ch: int = 32, trunk_skip: str = 'conv_first'):
        super().__init__()
        check_scale('SRFlowRRDBNet', scale)
        if trunk_skip not in TRUNK_SKIPS:
            raise ValueError(f"trunk_skip must be one of {TRUNK_SKIPS}, got '{trunk_skip}'")
        self.scale = scale
        self.trunk_skip = trunk_skip
        self.conv_first = nn.Conv2d(num_in_ch, num_feat, 3, 1, 1)
        self.body = make_layer(RRDB, num_block, num_feat=num_feat, num_grow_ch=num_grow_ch)
        self.conv_body = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        self.num_up = int(math.log2(scale))
        for i in range(1, self.num_up + 1):
            setattr(self, f'conv_up{i}', nn.Conv2d(num_feat, num_feat, 3, 1, 1))
        self.conv_hr = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        self.conv_last = nn.Conv2d(num_feat, num_out_ch, 3, 1, 1)
        self.lrelu = nn.LeakyReLU(negative_slope=0.2, inplace=True)

    def features(self,
                 x: torch.Tensor,
                 tap_blocks: Sequence[int] = (),
                 num_up: Optional[int] = None,
                 checkpoint_blocks: bool = False) -> Tuple[torch.Tensor, List[torch.Tensor], Optional[torch.Tensor]]:
        """Intermediate features of the LR image ``x`` for conditioning the flow.

        Args:
            x (Tensor): LR image, [B, C, h, w].
            tap_blocks (Sequence[int]): 0-based trunk blocks whose outputs are concatenated (in this order).
            num_up (int): How many upsampled features to return. Default: all of them.
            checkpoint_blocks (bool): Keep only each RRDB block's input for backward and recompute the block
                then (``torch.utils.checkpoint``): less memory, same gradients, one more trunk forward.

        Returns:
            tuple: ``lr_feat`` (the long skip + conv_body(trunk)), the list of upsampled features at 2x, 4x, ... LR
            size (after their LeakyReLU, as the release computes them), and the concatenated tapped block outputs
            (None without taps).
        """
        num_up = self.num_up if num_up is None else num_up
        feat = self.conv_first(x)
        trunk, tapped = feat, {}
        wanted = set(tap_blocks)
        checkpoint_blocks = checkpoint_blocks and torch.is_grad_enabled()
        for index, block in enumerate(self.body):
            trunk = checkpoint(block, trunk, use_reentrant=False) if checkpoint_blocks else block(trunk)
            if index in wanted:
                tapped[index] = trunk
        lr_feat = (feat if self.trunk_skip == 'conv_first' else trunk) + self.conv_body(trunk)
        upsampled, up = [], lr_feat
        for i in range(1, num_up + 1):
            up = F.leaky_relu(getattr(self, f'conv_up{i}')(F.interpolate(up, scale_factor=2)), 0.2)
            upsampled.append(up)
        taps = torch.cat([tapped[i] for i in tap_blocks], 1) if tap_blocks else None
        return lr_feat, upsampled, taps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _, upsampled, _ = self.features(x)
        return self.conv_last(self.lrelu(self.conv_hr(upsampled[-1])))
