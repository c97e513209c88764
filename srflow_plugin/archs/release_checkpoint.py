"""Conversion of the SRFlow release's checkpoints (``SRFlow_DF2K_4X.pth`` ...) to :class:`SRFlowNet` weights.

The release stores the flow as one flat list ``flowUpsamplerNet.layers.{n}`` in construction order: per level a
squeeze (no parameters), the plain steps, the conditional steps and, on levels with a split, the split.
"""
import re

from .rrdb_arch import encoder_state_dict

# SRFlowNet arguments of the released models
RELEASED_CONFIGS = {
    'SRFlow_DF2K_4X': dict(scale=4, num_block=23, tap_blocks=(1, 8, 15, 22), flow_steps=16, trunk_skip='trunk'),
    'SRFlow_DF2K_8X': dict(scale=8, num_block=23, tap_blocks=(1, 3, 5, 7), flow_steps=16, trunk_skip='trunk'),
    'SRFlow_CelebA_8X': dict(scale=8, num_block=8, tap_blocks=(1, 3, 5, 7), flow_steps=16, trunk_skip='trunk'),
}

_SUBNET_LAYERS = {'0': 'conv_in', '2': 'conv_hidden', '4': 'conv_out'}
_SUBNETS = {'fFeatures': 'injector', 'fAffine': 'coupling'}
_STEP_KEY = re.compile(r'^affine\.(fFeatures|fAffine)\.(\d)\.(.*)$')


def release_layer_names(net):
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


def convert_release_state_dict(state_dict, net):
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
    for key, value in state_dict.items():
        if key.startswith('module.'):
            key = key[len('module.'):]
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
