"""The RRDB network (ESRGAN) as SRFlow's LR encoder, and as a plain SR network at x2, x4 and x8."""
import math
import re

import torch
from basicsr.archs.arch_util import make_layer
from basicsr.archs.rrdbnet_arch import RRDB
from basicsr.utils import get_root_logger
from basicsr.utils.registry import ARCH_REGISTRY
from torch import nn as nn
from torch.nn import functional as F
from torch.utils.checkpoint import checkpoint

from srflow_plugin.utils import checkpoint_params, load_weights, register

# SRFlow release names -> BasicSR names (the release's RRDB_*.pth and the RRDB part of SRFlow_*.pth)
RELEASE_RRDB_RENAMES = [
    (re.compile(r'^RRDB_trunk\.(\d+)\.RDB(\d)\.'), r'body.\1.rdb\2.'),
    (re.compile(r'^trunk_conv\.'), 'conv_body.'),
    (re.compile(r'^upconv(\d)\.'), r'conv_up\1.'),
    (re.compile(r'^HRconv\.'), 'conv_hr.'),
]
RELEASE_KEY = re.compile(r'(^|\.)(RRDB_trunk|trunk_conv)\.')
TRUNK_SKIPS = ('conv_first', 'trunk')


def rename_release_rrdb_key(key):
    """Maps one SRFlow-release RRDB key (``RRDB_trunk.0.RDB1.conv1.weight``) to BasicSR's naming."""
    for pattern, replacement in RELEASE_RRDB_RENAMES:
        key = pattern.sub(replacement, key)
    return key


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

    def __init__(self, num_in_ch=3, num_out_ch=3, scale=4, num_feat=64, num_block=23, num_grow_ch=32,
                 trunk_skip='conv_first'):
        super().__init__()
        if scale not in (2, 4, 8):
            raise ValueError(f'SRFlowRRDBNet supports scale 2, 4 or 8, got scale={scale}')
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

    def features(self, x, tap_blocks=(), num_up=None, checkpoint_blocks=False):
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

    def forward(self, x):
        _, upsampled, _ = self.features(x)
        return self.conv_last(self.lrelu(self.conv_hr(upsampled[-1])))


def encoder_state_dict(state_dict):
    """Brings an RRDB state dict of any supported naming to :class:`SRFlowRRDBNet`'s keys.

    Accepts BasicSR RRDBNet keys, the SRFlow release's ``RRDB_*.pth`` keys, and either with a ``module.`` (DDP) or
    ``RRDB.`` (SRFlow release network) or ``encoder.`` (this plugin's SRFlowNet) prefix.
    """
    converted = {}
    for key, value in state_dict.items():
        for prefix in ('module.', 'RRDB.', 'encoder.'):
            if key.startswith(prefix):
                key = key[len(prefix):]
        converted[rename_release_rrdb_key(key)] = value
    return converted


def load_encoder_weights(encoder, path, strict=True):
    """Loads pretrained RRDB weights into ``encoder`` (a :class:`SRFlowRRDBNet`).

    The checkpoint may be a BasicSR checkpoint (``params_ema`` preferred over ``params``, e.g. the ESRGAN x4
    releases) or an SRFlow release ``RRDB_*.pth`` (old key names); the naming is detected from the keys.

    Args:
        encoder (nn.Module): The network to load into.
        path (str): Checkpoint file.
        strict (bool): Require exactly matching keys. Default: True.

    Raises:
        ValueError: naming the file and listing missing/unexpected keys or mismatched shapes.
    """
    checkpoint = torch.load(path, map_location='cpu', weights_only=True)
    if not isinstance(checkpoint, dict):
        raise ValueError(f'{path}: expected a state dict, got {type(checkpoint).__name__}')
    raw = checkpoint_params(checkpoint)
    if raw is None:  # an SRFlow release RRDB_*.pth is the bare state dict
        raw = checkpoint['state_dict'] if isinstance(checkpoint.get('state_dict'), dict) else checkpoint
    if any(RELEASE_KEY.search(k) for k in raw):
        if getattr(encoder, 'trunk_skip', 'trunk') != 'trunk':
            get_root_logger().warning(f"{path} uses the SRFlow release's names: its weights were trained with "
                                      "the release's long skip; set trunk_skip: trunk on the network to match.")
    state_dict = encoder_state_dict(raw)
    return load_weights(encoder, state_dict, f'{path} (for the RRDB encoder {type(encoder).__name__}, scale '
                        f'{getattr(encoder, "scale", "?")})', strict)
