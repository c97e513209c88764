"""Reading weights out of checkpoints, and loading them with errors that say what does not fit."""


def checkpoint_params(checkpoint):
    """The weights of a BasicSR checkpoint: ``params_ema`` (preferred, as in the ESRGAN releases) or ``params``;
    None when it has neither."""
    for key in ('params_ema', 'params'):
        if isinstance(checkpoint.get(key), dict):
            return checkpoint[key]
    return None


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
        ValueError: listing missing and unexpected keys (first 8 of each, with their counts) and shape mismatches.
    """
    own = net.state_dict()
    missing = sorted(set(own) - set(state_dict))
    unexpected = sorted(set(state_dict) - set(own))
    mismatched = [f'{k}: checkpoint {tuple(v.shape)} vs network {tuple(own[k].shape)}'
                  for k, v in state_dict.items() if k in own and tuple(v.shape) != tuple(own[k].shape)]
    if mismatched or (strict and (missing or unexpected)):
        raise ValueError(f'{source} does not fit:\n  missing keys ({len(missing)}): {missing[:8]}\n'
                         f'  unexpected keys ({len(unexpected)}): {unexpected[:8]}\n'
                         f'  shape mismatches ({len(mismatched)}): {mismatched[:8]}')
    net.load_state_dict({k: v for k, v in state_dict.items() if k in own}, strict=strict)
    return missing, unexpected
