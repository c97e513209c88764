"""Console commands: exit status 0 on success, 1 with a one-line error on failure, never a dumped return value."""
import argparse
import sys

from srflow_plugin.utils.allocator import keep_freed_memory

__all__ = ['console_command', 'HelpFormatter']

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
