"""A trained SRFlowNet for inference: built from the ``network_g`` that its checkpoint (or option file) holds, its
weights loaded with errors naming the file (:func:`load_srflow`). :func:`srflow_plugin.utils.checkpoint.save_srflow`
writes such self-contained checkpoints.
"""
from copy import deepcopy
from typing import Union

import torch
from basicsr.archs import build_network  # SRFlowNet is registered: srflow_plugin/__init__.py runs before this module

from srflow_plugin.utils.checkpoint import (checkpoint_params, load_weights, read_checkpoint, strip_module_prefix,
                                            warn_layout_mismatch)
from srflow_plugin.utils.option_file import read_option_file

__all__ = ['network_config', 'load_srflow']


def _network_g_from_opt(opt):
    """``network_g`` of an option file path or an already parsed option dict."""
    source = opt
    if isinstance(opt, str):
        opt = read_option_file(opt)
    if not isinstance(opt, dict) or not isinstance(opt.get('network_g'), dict):
        raise ValueError(f'Options {source if isinstance(source, str) else "(dict)"} have no network_g section.')
    return opt['network_g']


def network_config(checkpoint: dict, path: str, opt: Union[str, dict, None] = None) -> dict:
    """The ``network_g`` dict to build the network from: ``opt``'s if given, else the checkpoint's.

    Args:
        checkpoint (dict): The loaded checkpoint.
        path (str): Its file, for error messages.
        opt (str | dict | None): A BasicSR option file (or parsed dict) with a ``network_g`` section.

    Returns:
        dict: A copy of ``network_g`` with ``type`` (default ``SRFlowNet``).
    """
    if opt is not None:
        config = _network_g_from_opt(opt)
    elif isinstance(checkpoint.get('network_g'), dict):
        config = checkpoint['network_g']
    else:
        raise ValueError(f'Checkpoint {path} holds no network configuration (no "network_g" key, as BasicSR '
                         'training checkpoints): pass the training option file (--opt) to say which network it is.')
    config = deepcopy(config)
    config.setdefault('type', 'SRFlowNet')
    if config['type'] != 'SRFlowNet':
        raise ValueError(f'network_g of {path if opt is None else opt} has type {config["type"]}; these tools '
                         'need an SRFlowNet.')
    return config


def _state_dict(checkpoint, path):
    state_dict = checkpoint_params(checkpoint)
    if state_dict is None:
        raise ValueError(f'Checkpoint {path} has neither "params_ema" nor "params" (keys: {sorted(checkpoint)[:10]}).')
    return strip_module_prefix(state_dict)


def load_srflow(path: str,
                opt: Union[str, dict, None] = None,
                device: Union[str, torch.device] = 'cpu') -> torch.nn.Module:
    """Builds an SRFlowNet and loads a checkpoint into it, ready for inference (eval mode, on ``device``).

    Args:
        path (str): BasicSR checkpoint ``{'params': ..., 'params_ema': ...}`` (``params_ema`` is preferred), with
            an optional ``network_g`` key holding the network's options (as written by
            :func:`~srflow_plugin.utils.checkpoint.save_srflow` and the release converter).
        opt (str | dict | None): BasicSR option file (or parsed options) whose ``network_g`` builds the network;
            needed when the checkpoint has no ``network_g`` (checkpoints saved by training), and preferred over
            it when given.
        device (str | torch.device): Where the network goes. Default: 'cpu'.

    Returns:
        SRFlowNet: the network in eval mode.

    Raises:
        FileNotFoundError / ValueError: naming the file when it is missing, unreadable, has no configuration, or
        its keys or shapes do not fit the configured network.
    """
    checkpoint = read_checkpoint(path)
    if not isinstance(checkpoint, dict):
        raise ValueError(f'Checkpoint {path} is not a dict (got {type(checkpoint).__name__}).')
    config = network_config(checkpoint, path, opt)
    if opt is not None:
        stored = deepcopy(checkpoint.get('network_g'))
        if isinstance(stored, dict):
            stored.setdefault('type', 'SRFlowNet')
        warn_layout_mismatch(stored, config, f'Checkpoint {path}')
    state_dict = _state_dict(checkpoint, path)
    try:
        net = build_network(deepcopy(config))
    except TypeError as error:  # an unknown or misspelt network_g key
        raise ValueError(f'network_g of {opt if isinstance(opt, str) else path} does not build an SRFlowNet: '
                         f'{error}') from error
    load_weights(net, state_dict, f'Checkpoint {path} (for the network {config})')
    return net.eval().to(device)
