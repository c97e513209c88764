"""The built-in trained model shipped inside the package: SRFlow x4 trained on the CPU on free photographs.

Data, training commands, what it is good and bad at and its held-out figures: docs/model-card.md. The checkpoint
holds its network options (``network_g``), so ``load_srflow(builtin_checkpoint())`` needs no option file.
"""
from os import path as osp

from srflow_plugin.inference.loading import load_srflow
from srflow_plugin.utils.checkpoint import save_srflow
from srflow_plugin.utils.option_file import read_option_file

BUILTIN_X4 = osp.join(osp.dirname(osp.abspath(__file__)), 'srflow_builtin_x4.pth')


def builtin_checkpoint():
    """Path of the built-in SRFlow x4 checkpoint (``params`` + ``network_g``)."""
    if not osp.isfile(BUILTIN_X4):
        raise FileNotFoundError(f'The built-in model {BUILTIN_X4} is missing from this installation; reinstall the '
                                'package or pass a checkpoint with -c.')
    return BUILTIN_X4


def resolve_checkpoint(checkpoint, opt=None, command='srflow'):
    """``checkpoint`` as given, else the built-in model, saying so in one line.

    Args:
        checkpoint (str | None): The user's checkpoint (``-c``), or None for the built-in model.
        opt (str | None): The user's option file (``--opt``); it describes the user's own checkpoint, so it is
            refused without one.
        command (str): Name of the command, for the messages.
    """
    if checkpoint is not None:
        return checkpoint
    if opt is not None:
        raise ValueError(f'{command}: --opt {opt} describes a checkpoint: give that checkpoint with -c (without -c '
                         'the built-in model is used, which needs no option file).')
    path = builtin_checkpoint()
    print(f'{command}: no -c given, using the built-in SRFlow x4 model ({path}; see docs/model-card.md)')
    return path


def pack_checkpoint(checkpoint, opt, output=BUILTIN_X4):
    """Writes a training checkpoint as a self-contained one (``params`` + ``network_g``), refusing non-finite weights.

    Args:
        checkpoint (str): A training checkpoint (``experiments/<name>/models/net_g_latest.pth``).
        opt (str): Its training option file (gives ``network_g``).
        output (str): Where to write. Default: the built-in model's place in the package.

    Returns:
        str: ``output``.
    """
    net = load_srflow(checkpoint, opt)  # refuses non-finite weights, naming the parameter
    save_srflow(net, output, read_option_file(opt)['network_g'])
    return output
