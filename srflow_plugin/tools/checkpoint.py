"""Load an SRFlowNet for inference from a BasicSR checkpoint, with its configuration."""
from copy import deepcopy
from os import path as osp

import torch
import yaml

from srflow_plugin.utils import checkpoint_params, load_weights

__all__ = ['load_srflow', 'save_srflow', 'network_config']


def _read_checkpoint(path):
    if not osp.isfile(path):
        raise FileNotFoundError(f'Checkpoint {path} does not exist.')
    try:
        return torch.load(path, map_location='cpu', weights_only=True)
    except Exception as error:  # noqa: BLE001  (unpickling errors come in many types)
        raise ValueError(f'Cannot read checkpoint {path}: {error}') from error


def _network_g_from_opt(opt):
    """``network_g`` of an option file path or an already parsed option dict."""
    source = opt
    if isinstance(opt, str):
        if not osp.isfile(opt):
            raise FileNotFoundError(f'Option file {opt} does not exist.')
        with open(opt) as f:
            opt = yaml.safe_load(f)
    if not isinstance(opt, dict) or not isinstance(opt.get('network_g'), dict):
        raise ValueError(f'Options {source if isinstance(source, str) else "(dict)"} have no network_g section.')
    return opt['network_g']


def network_config(checkpoint, path, opt=None):
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
    return {k[7:] if k.startswith('module.') else k: v for k, v in state_dict.items()}


def load_srflow(path, opt=None, device='cpu'):
    """Builds an SRFlowNet and loads a checkpoint into it, ready for inference (eval mode, on ``device``).

    Args:
        path (str): BasicSR checkpoint ``{'params': ..., 'params_ema': ...}`` (``params_ema`` is preferred), with
            an optional ``network_g`` key holding the network's options (as written by ``save_srflow`` and the
            release converter).
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
    import srflow_plugin  # noqa: F401  (registers SRFlowNet; installs the torchvision shim before basicsr)
    from basicsr.archs import build_network

    checkpoint = _read_checkpoint(path)
    if not isinstance(checkpoint, dict):
        raise ValueError(f'Checkpoint {path} is not a dict (got {type(checkpoint).__name__}).')
    config = network_config(checkpoint, path, opt)
    state_dict = _state_dict(checkpoint, path)
    net = build_network(deepcopy(config))
    load_weights(net, state_dict, f'Checkpoint {path} (for the network {config})')
    return net.eval().to(device)


def save_srflow(net, path, network_g):
    """Writes ``{'params': state_dict, 'network_g': network_g}``: a BasicSR checkpoint that ``load_srflow``
    can rebuild without an option file.

    Args:
        net (nn.Module): The network.
        path (str): Output file.
        network_g (dict): The network's options (``type`` and constructor arguments).
    """
    config = deepcopy(dict(network_g))
    config.setdefault('type', type(net).__name__)
    config = {k: list(v) if isinstance(v, tuple) else v for k, v in config.items()}
    state_dict = {k: v.detach().cpu() for k, v in net.state_dict().items()}
    torch.save({'params': state_dict, 'network_g': config}, path)
