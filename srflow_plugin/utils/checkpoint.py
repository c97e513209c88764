"""Checkpoints: the one module that reads, converts and writes them.

- Reading: :func:`read_checkpoint` (``torch.load(weights_only=True)``: a file never runs code), the weights of a
  BasicSR checkpoint (:func:`checkpoint_params`, ``params_ema`` preferred), one ``module.`` (DDP) prefix strip
  (:func:`strip_module_prefix`) and loading with an error listing what does not fit (:func:`load_weights`).
- The encoder alone (:func:`load_encoder_weights`: BasicSR RRDBNet or SRFlow release ``RRDB_*.pth`` names), the
  SRFlow release's checkpoints (:func:`convert_release_state_dict`, :func:`convert_release_checkpoint`). A whole
  SRFlowNet for inference: :func:`srflow_plugin.inference.loading.load_srflow`.
- Writing: :func:`atomic_save` (a temporary ``<file>.tmp<pid>`` renamed into place: a killed process never leaves a
  half-written checkpoint; errors name the file), :func:`remove_stale_temporaries` (the ``*.tmp<pid>`` files a
  killed process left), :func:`save_srflow` (weights plus the network's configuration).
"""
import glob
import os
import re
from copy import deepcopy
from os import path as osp

import torch
from basicsr.utils import get_root_logger

from srflow_plugin.utils.run_lock import process_running

__all__ = [
    'read_checkpoint', 'checkpoint_params', 'strip_module_prefix', 'load_weights', 'atomic_save',
    'remove_stale_temporaries', 'encoder_state_dict', 'load_encoder_weights', 'RELEASED_CONFIGS',
    'release_layer_names', 'convert_release_state_dict', 'convert_release_checkpoint', 'save_srflow',
    'check_finite', 'warn_layout_mismatch', 'load_network_weights_only'
]

# the temporaries of atomic_save: checkpoints and training states only (a user's notes.tmp2024 is left alone)
_TEMPORARY = re.compile(r'\.(?:pth|state)\.tmp(\d+)$')


# ---------------------------------------------------------------------------------------------------- reading
def read_checkpoint(path, what='Checkpoint'):
    """``torch.load(path, weights_only=True)`` on the CPU, with errors naming the file.

    Raises:
        FileNotFoundError: the file does not exist.
        ValueError: it cannot be read as a weights-only checkpoint (corrupt, or it would need to run code).
    """
    if not osp.isfile(path):
        raise FileNotFoundError(f'{what} {path} does not exist.')
    if osp.getsize(path) == 0:
        raise ValueError(f'Cannot read {what.lower()} {path}: the file is empty (0 bytes).')
    try:
        return torch.load(path, map_location='cpu', weights_only=True)
    except Exception as error:  # noqa: BLE001  (unpickling errors come in many types)
        reason = ' '.join(str(error).split()) or type(error).__name__
        raise ValueError(f'Cannot read {what.lower()} {path}: {reason}') from error


def checkpoint_params(checkpoint):
    """The weights of a BasicSR checkpoint: ``params_ema`` (preferred, as in the ESRGAN releases) or ``params``;
    None when it has neither."""
    for key in ('params_ema', 'params'):
        if isinstance(checkpoint.get(key), dict):
            return checkpoint[key]
    return None


def strip_module_prefix(state_dict):
    """The state dict without the ``module.`` prefix that DataParallel / DistributedDataParallel add to keys."""
    return {(k[len('module.'):] if k.startswith('module.') else k): v for k, v in state_dict.items()}


def check_finite(state_dict, source):
    """Raises a ValueError naming ``source`` and the first parameter (or buffer) with NaN or infinite values: such
    weights give black or NaN images, never a result."""
    for key, value in state_dict.items():
        if torch.is_tensor(value) and value.is_floating_point() and not bool(torch.isfinite(value).all()):
            bad = int((~torch.isfinite(value)).sum())
            raise ValueError(f'{source}: parameter {key} holds {bad} non-finite value(s) (NaN or inf) of '
                             f'{value.numel()}; these weights cannot give a finite image.')


def warn_layout_mismatch(stored, given, source):
    """Warns, naming both values, for every ``network_g`` key on which the options a checkpoint was written with
    (``stored``) and the options it is loaded with (``given``) disagree. Returns the differing keys."""
    if not isinstance(stored, dict) or not isinstance(given, dict):
        return []
    differing = [k for k in sorted(set(stored) | set(given), key=str)
                 if _plain(stored.get(k)) != _plain(given.get(k))]
    for key in differing:
        get_root_logger().warning(f'{source} was written with network_g.{key} = {stored.get(key)!r}, but the options '
                                  f'give {given.get(key)!r}; the options are used.')
    return differing


def _plain(value):
    return list(value) if isinstance(value, tuple) else value


def load_network_weights_only(model, net, load_path, strict=True, param_key='params'):
    """BasicSR's ``BaseModel.load_network`` (installed in its place by :mod:`srflow_plugin.utils.basicsr_compat`),
    but the file is read with ``weights_only=True`` (:func:`read_checkpoint`, whatever the torch version or
    ``TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD``), non-finite weights are an error naming the parameter, and a
    ``network_g`` stored in the file that differs from the model's options is warned about."""
    net = model.get_bare_model(net)
    checkpoint = read_checkpoint(load_path)
    if not isinstance(checkpoint, dict):
        raise ValueError(f'Checkpoint {load_path} is not a dict (got {type(checkpoint).__name__}).')
    weights = checkpoint
    if param_key is not None:
        if param_key not in checkpoint and 'params' in checkpoint:
            param_key = 'params'
            get_root_logger().info('Loading: params_ema does not exist, use params.')
        if not isinstance(checkpoint.get(param_key), dict):
            raise ValueError(f'Checkpoint {load_path} has no {param_key!r} weights (keys: {sorted(checkpoint)[:10]}).')
        weights = checkpoint[param_key]
    get_root_logger().info(f'Loading {net.__class__.__name__} model from {load_path}, with param key: [{param_key}].')
    weights = strip_module_prefix(weights)
    check_finite(weights, f'Checkpoint {load_path}')
    warn_layout_mismatch(checkpoint.get('network_g'), (getattr(model, 'opt', None) or {}).get('network_g'),
                         f'Checkpoint {load_path}')
    model._print_different_keys_loading(net, weights, strict)
    net.load_state_dict(weights, strict=strict)


def load_weights(net, state_dict, source, strict=True):
    """``net.load_state_dict(state_dict)`` with one error that names ``source`` and lists what does not fit.

    Args:
        net (nn.Module): The network to load into.
        state_dict (dict): Weights with ``net``'s key names.
        source (str): What the weights are, for the error (e.g. the checkpoint file and the network).
        strict (bool): Also require the keys to match exactly; shapes must always match. Default: True.

    Returns:
        tuple: (missing keys, unexpected keys).

    Raises:
        ValueError: naming a parameter with non-finite values, or listing missing and unexpected keys (first 8 of
        each, with their counts) and shape mismatches.
    """
    own = net.state_dict()
    missing = sorted(set(own) - set(state_dict))
    unexpected = sorted(set(state_dict) - set(own))
    mismatched = [f'{k}: checkpoint {tuple(v.shape)} vs network {tuple(own[k].shape)}'
                  for k, v in state_dict.items() if k in own and tuple(v.shape) != tuple(own[k].shape)]
    check_finite(state_dict, source)
    if mismatched or (strict and (missing or unexpected)):
        raise ValueError(f'{source} does not fit:\n  missing keys ({len(missing)}): {missing[:8]}\n'
                         f'  unexpected keys ({len(unexpected)}): {unexpected[:8]}\n'
                         f'  shape mismatches ({len(mismatched)}): {mismatched[:8]}')
    net.load_state_dict({k: v for k, v in state_dict.items() if k in own}, strict=strict)
    return missing, unexpected


# ---------------------------------------------------------------------------------------------------- writing
def atomic_save(obj, path):
    """``torch.save`` to ``<path>.tmp<pid>``, then renamed to ``path``: a killed run never leaves a half-written
    file under the final name.

    Raises:
        OSError: naming ``path`` when it cannot be written (full disk, read-only folder, ...); nothing is left.
    """
    tmp_path = f'{path}.tmp{os.getpid()}'
    try:
        os.makedirs(osp.dirname(osp.abspath(path)), exist_ok=True)
        torch.save(obj, tmp_path)
        os.replace(tmp_path, path)
    except (OSError, RuntimeError) as error:
        raise OSError(f'Cannot write {path}: {error}') from error
    finally:
        if osp.exists(tmp_path):
            os.remove(tmp_path)


def remove_stale_temporaries(folder):
    """Removes the ``*.pth.tmp<pid>`` / ``*.state.tmp<pid>`` files of :func:`atomic_save` in ``folder`` whose
    process is no longer running (a kill during a save leaves them); no other file. Returns the removed paths."""
    removed = []
    for path in glob.glob(osp.join(glob.escape(folder), '*.tmp*')):
        match = _TEMPORARY.search(path)
        if match and int(match.group(1)) != os.getpid() and not process_running(int(match.group(1))):
            os.remove(path)
            removed.append(path)
    if removed:
        get_root_logger().info(f'Removed {len(removed)} temporary file(s) of an interrupted save: '
                               f'{", ".join(removed[:5])}')
    return removed


# ---------------------------------------------------------------------------------------------------- the encoder
# SRFlow release names -> BasicSR names (the release's RRDB_*.pth and the RRDB part of SRFlow_*.pth)
RELEASE_RRDB_RENAMES = [
    (re.compile(r'^RRDB_trunk\.(\d+)\.RDB(\d)\.'), r'body.\1.rdb\2.'),
    (re.compile(r'^trunk_conv\.'), 'conv_body.'),
    (re.compile(r'^upconv(\d)\.'), r'conv_up\1.'),
    (re.compile(r'^HRconv\.'), 'conv_hr.'),
]
RELEASE_KEY = re.compile(r'(^|\.)(RRDB_trunk|trunk_conv)\.')


def rename_release_rrdb_key(key):
    """Maps one SRFlow-release RRDB key (``RRDB_trunk.0.RDB1.conv1.weight``) to BasicSR's naming."""
    for pattern, replacement in RELEASE_RRDB_RENAMES:
        key = pattern.sub(replacement, key)
    return key


def encoder_state_dict(state_dict):
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


def convert_release_checkpoint(checkpoint, output, config):
    """Converts a released SRFlow checkpoint for ``SRFlowNet(**config)`` and writes ``output`` (atomically) with
    ``params`` and ``network_g``. Returns the network.

    Raises:
        FileNotFoundError / ValueError: naming the file when it is missing, unreadable or does not fit.
    """
    from srflow_plugin.archs import SRFlowNet

    state_dict = read_checkpoint(checkpoint)
    if isinstance(state_dict, dict) and isinstance(state_dict.get('state_dict'), dict):
        state_dict = state_dict['state_dict']
    net = SRFlowNet(**config)
    load_weights(net, convert_release_state_dict(state_dict, net), f'{checkpoint} (for SRFlowNet({config}))')
    save_srflow(net, output, {'type': 'SRFlowNet', **config})
    return net


# ---------------------------------------------------------------------------------------------------- SRFlowNet
def save_srflow(net, path, network_g):
    """Writes ``{'params': state_dict, 'network_g': network_g}``: a BasicSR checkpoint that ``load_srflow``
    can rebuild without an option file.

    Args:
        net (nn.Module): The network.
        path (str): Output file (written atomically).
        network_g (dict): The network's options (``type`` and constructor arguments).
    """
    config = deepcopy(dict(network_g))
    config.setdefault('type', type(net).__name__)
    config = {k: list(v) if isinstance(v, tuple) else v for k, v in config.items()}
    state_dict = {k: v.detach().cpu() for k, v in net.state_dict().items()}
    atomic_save({'params': state_dict, 'network_g': config}, path)
