"""Console commands: exit status 0 on success, 1 with a one-line error on failure, never a dumped return value."""
import argparse
import sys

import torch

from srflow_plugin.utils.allocator import keep_freed_memory

__all__ = ['console_command', 'HelpFormatter', 'add_device_argument', 'resolve_device']

# errors that are the user's input or environment (a missing file, a bad image, a full disk, an image too large for
# the memory): one line, no traceback
USER_ERRORS = (OSError, ValueError, RuntimeError, MemoryError)


def console_command(main, name):
    """The ``console_scripts`` entry point of ``main(argv)``: returns 0 when it finishes, 1 after printing
    ``<name>: error: <message>`` for an error of the input or the environment, 130 on Ctrl-C. argparse's own usage
    errors keep their status 2. The process keeps freed memory for reuse (:mod:`srflow_plugin.utils.allocator`)."""

    def run(argv=None):
        keep_freed_memory()
        try:
            main(argv)
        except KeyboardInterrupt:
            print(f'{name}: interrupted', file=sys.stderr)
            return 130
        except USER_ERRORS as error:
            print(f'{name}: error: {error}', file=sys.stderr)
            return 1
        return 0

    run.__name__ = run.__qualname__ = 'cli'
    run.__doc__ = f'Console command {name}: exit status 0 on success, non-zero on failure.'
    return run


class HelpFormatter(argparse.RawDescriptionHelpFormatter, argparse.ArgumentDefaultsHelpFormatter):
    """``--help`` keeps the description's line breaks and shows every option's default (not None's)."""

    def _get_help_string(self, action):
        if action.default is None or action.required or action.default is False:
            return action.help or ''
        return super()._get_help_string(action) if action.help else '(default: %(default)s)'


def add_device_argument(parser, what='the network'):
    """The commands' one ``--device`` option: ``auto`` (default) is the GPU when torch sees one, else the CPU, as
    ``num_gpu: auto`` does for training; ``cpu``, ``cuda`` and ``cuda:<index>`` choose. Resolve it with
    :func:`resolve_device`."""
    parser.add_argument('--device', default='auto', help=f'device of {what}: auto (the GPU when there is one, '
                        'else the CPU), cpu, cuda, cuda:1, ...')


def resolve_device(name):
    """The ``torch.device`` of a ``--device`` value (see :func:`add_device_argument`).

    Raises:
        ValueError: naming the option, for a device name torch does not know or a GPU this machine does not have.
    """
    if name == 'auto':
        return torch.device('cuda' if torch.cuda.is_available() else 'cpu')
    try:
        device = torch.device(name)
    except (RuntimeError, ValueError):
        raise ValueError(f'--device {name!r}: not a device name (auto, cpu, cuda, cuda:1, ...)') from None
    if device.type == 'cuda':
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            raise ValueError(f'--device {name}: torch sees no CUDA device here; use --device cpu or auto')
        if device.index is not None and device.index >= count:
            raise ValueError(f'--device {name}: this machine has {count} CUDA device(s) (cuda:0 .. cuda:{count - 1})')
    elif device.type != 'cpu':
        raise ValueError(f'--device {name}: the commands run on cpu or cuda')
    return device
