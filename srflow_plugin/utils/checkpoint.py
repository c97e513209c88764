"""Checkpoints: the one module that reads and writes them.

- Reading: :func:`read_checkpoint` (``torch.load(weights_only=True)``: a file never runs code), the weights of a
  BasicSR checkpoint (:func:`checkpoint_params`, ``params_ema`` preferred), one ``module.`` (DDP) prefix strip
  (:func:`strip_module_prefix`) and loading with an error listing what does not fit (:func:`load_weights`).
- A whole SRFlowNet for inference: :func:`srflow_plugin.inference.loading.load_srflow`. The SRFlow release's key
  names (its checkpoints and ``RRDB_*.pth`` encoders) are renamed beside the networks, in
  :mod:`srflow_plugin.archs.release_checkpoint`.
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
    'remove_stale_temporaries', 'save_srflow', 'check_finite', 'warn_layout_mismatch', 'load_network_weights_only'
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
