"""The SRFlow release's checkpoints for this package's networks: its key names renamed to SRFlowNet's and
SRFlowRRDBNet's.

- The encoder alone: :func:`load_encoder_weights` (BasicSR RRDBNet or SRFlow release ``RRDB_*.pth`` names, detected
  from the keys), :func:`encoder_state_dict`, :func:`rename_release_rrdb_key`.
- A whole released network: :data:`RELEASED_CONFIGS` (the SRFlowNet arguments of the released models),
  :func:`convert_release_state_dict` (release keys -> ``SRFlowNet`` keys), :func:`load_release_checkpoint` (a
  released file as an ``SRFlowNet``; ``srflow-convert`` writes it).

Reading and writing files goes through :mod:`srflow_plugin.utils.checkpoint`.
"""
import re
from typing import Any, Dict, List, Tuple

import torch
from basicsr.utils import get_root_logger
from torch import nn as nn

from srflow_plugin.utils.checkpoint import checkpoint_params, load_weights, read_checkpoint, strip_module_prefix
from .srflow_arch import SRFlowNet

__all__ = [
    'RELEASED_CONFIGS', 'rename_release_rrdb_key', 'encoder_state_dict', 'load_encoder_weights', 'release_layer_names',
    'convert_release_state_dict', 'load_release_checkpoint'
]

# ---------------------------------------------------------------------------------------------------- the encoder
# SRFlow release names -> BasicSR names (the release's RRDB_*.pth and the RRDB part of SRFlow_*.pth)
RELEASE_RRDB_RENAMES = [
    (re.compile(r'^RRDB_trunk\.(\d+)\.RDB(\d)\.'), r'body.\1.rdb\2.'),
    (re.compile(r'^trunk_conv\.'), 'conv_body.'),
    (re.compile(r'^upconv(\d)\.'), r'conv_up\1.'),
    (re.compile(r'^HRconv\.'), 'conv_hr.'),
]
RELEASE_KEY = re.compile(r'(^|\.)(RRDB_trunk|trunk_conv)\.')


def rename_release_rrdb_key(key: str) -> str:
    """Maps one SRFlow-release RRDB key (``RRDB_trunk.0.RDB1.conv1.weight``) to BasicSR's naming."""
    for pattern, replacement in RELEASE_RRDB_RENAMES:
        key = pattern.sub(replacement, key)
    return key


def encoder_state_dict(state_dict: Dict[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
    """Brings an RRDB state dict of any supported naming to :class:`SRFlowRRDBNet`'s keys.

    Accepts BasicSR RRDBNet keys, the SRFlow release's ``RRDB_*.pth`` keys, and either with a ``module.`` (DDP) or
    ``RRDB.`` (SRFlow release network) or ``encoder.`` (this plugin's SRFlowNet) prefix.
    """
    converted = {}
    for key, value in strip_module_prefix(state_dict).items():
        for prefix in ('RRDB.', 'encoder.'):
            if key.startswith(prefix):
                key = key[len(prefix):]
        converted[rename_release_rrdb_key(key)] = value
    return converted


def load_encoder_weights(encoder: nn.Module, path: str, strict: bool = True) -> Tuple[List[str], List[str]]:
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
    checkpoint = read_checkpoint(path, 'Encoder checkpoint')
    if not isinstance(checkpoint, dict):
        raise ValueError(f'{path}: expected a state dict, got {type(checkpoint).__name__}')
    raw = checkpoint_params(checkpoint)
    if raw is None:  # an SRFlow release RRDB_*.pth is the bare state dict
        raw = checkpoint['state_dict'] if isinstance(checkpoint.get('state_dict'), dict) else checkpoint
    # the long skip the weights were trained with: stored by this plugin, implied by the release's names, else
    # ESRGAN's (BasicSR names)
    stored = checkpoint.get('network_g') if isinstance(checkpoint.get('network_g'), dict) else {}
    release_names = any(RELEASE_KEY.search(k) for k in raw)
    trained = stored.get('trunk_skip', 'trunk' if release_names else 'conv_first')
    if getattr(encoder, 'trunk_skip', trained) != trained:
        why = ('its network_g says so' if 'trunk_skip' in stored else "it uses the SRFlow release's names"
               if release_names else "it uses BasicSR's (ESRGAN's) names")
        get_root_logger().warning(f"{path} was trained with trunk_skip: {trained} ({why}), but the network has "
                                  f'trunk_skip: {encoder.trunk_skip}; set trunk_skip: {trained} to match.')
    state_dict = encoder_state_dict(raw)
    return load_weights(encoder, state_dict, f'{path} (for the RRDB encoder {type(encoder).__name__}, scale '
                        f'{getattr(encoder, "scale", "?")})', strict)


# ---------------------------------------------------------------------------------------------------- the release
# SRFlowNet arguments of the released models
RELEASED_CONFIGS = {
    'SRFlow_DF2K_4X': dict(scale=4, num_block=23, tap_blocks=(1, 8, 15, 22), flow_steps=16, trunk_skip='trunk'),
    'SRFlow_DF2K_8X': dict(scale=8, num_block=23, tap_blocks=(1, 3, 5, 7), flow_steps=16, trunk_skip='trunk'),
    'SRFlow_CelebA_8X': dict(scale=8, num_block=8, tap_blocks=(1, 3, 5, 7), flow_steps=16, trunk_skip='trunk'),
}

_SUBNET_LAYERS = {'0': 'conv_in', '2': 'conv_hidden', '4': 'conv_out'}
_SUBNETS = {'fFeatures': 'injector', 'fAffine': 'coupling'}
_STEP_KEY = re.compile(r'^affine\.(fFeatures|fAffine)\.(\d)\.(.*)$')


def release_layer_names(net: SRFlowNet) -> Dict[int, str]:
    """Maps each release layer index n to this network's module path, in construction order."""
    names, n = {}, 0
    for level_index, level in enumerate(net.levels):
        n += 1  # squeeze
        for step_index in range(len(level.steps)):
            names[n] = f'levels.{level_index}.steps.{step_index}'
            n += 1
        if level.split is not None:
            names[n] = f'levels.{level_index}.split'
            n += 1
    return names


def _rename_step_key(rest):
    match = _STEP_KEY.match(rest)
    if match is None:
        return rest  # actnorm.*, invconv.weight, conv.* of a split: same names
    subnet, layer, tail = match.groups()
    return f'{_SUBNETS[subnet]}.net.{_SUBNET_LAYERS[layer]}.{tail}'


def convert_release_state_dict(state_dict: Dict[str, torch.Tensor], net: SRFlowNet) -> Dict[str, torch.Tensor]:
    """Renames a release SRFlowNet state dict to the keys of ``net`` (an :class:`SRFlowNet` of the same config).

    ``flowUpsamplerNet.f.*`` (built but never used by the release) is dropped.

    Args:
        state_dict (dict): The release's state dict (``RRDB.*`` and ``flowUpsamplerNet.*`` keys).
        net (SRFlowNet): The network the result is for (gives the layer layout).

    Returns:
        dict: A state dict for ``net.load_state_dict``.

    Raises:
        ValueError: for keys that belong to neither part, or a layer index the layout does not have.
    """
    layer_names = release_layer_names(net)
    converted, rrdb, unknown = {}, {}, []
    for key, value in strip_module_prefix(state_dict).items():
        if key.startswith('RRDB.'):
            rrdb[key] = value
        elif key.startswith('flowUpsamplerNet.f.'):
            continue
        elif key.startswith('flowUpsamplerNet.layers.'):
            index, rest = key[len('flowUpsamplerNet.layers.'):].split('.', 1)
            if int(index) not in layer_names:
                unknown.append(key)
                continue
            converted[f'{layer_names[int(index)]}.{_rename_step_key(rest)}'] = value
        else:
            unknown.append(key)
    if unknown:
        raise ValueError(f'keys that do not fit an SRFlow release network of this configuration: {unknown[:10]}'
                         f'{" ..." if len(unknown) > 10 else ""}')
    converted.update({f'encoder.{k}': v for k, v in encoder_state_dict(rrdb).items()})
    return converted


def load_release_checkpoint(checkpoint: str, config: Dict[str, Any]) -> SRFlowNet:
    """Reads a released SRFlow checkpoint into ``SRFlowNet(**config)`` (``srflow-convert`` then writes it as a
    BasicSR checkpoint). Returns the network.

    Raises:
        FileNotFoundError / ValueError: naming the file when it is missing, unreadable or does not fit.
    """
    state_dict = read_checkpoint(checkpoint)
    if isinstance(state_dict, dict) and isinstance(state_dict.get('state_dict'), dict):
        state_dict = state_dict['state_dict']
    net = SRFlowNet(**config)
    load_weights(net, convert_release_state_dict(state_dict, net), f'{checkpoint} (for SRFlowNet({config}))')
    return net
