"""Shared command-line front of ``srflow-train`` and ``srflow-test``: a real ``--help`` and the checks that must
happen before BasicSR builds data loaders and the model.

BasicSR's ``parse_options`` reads ``sys.argv`` itself; the parser here lists the same arguments with a
description, so ``--help`` explains the command, and an unknown argument (``srflow-test --auto_resume``) is refused
before anything starts.
"""
import argparse

import yaml

from srflow_plugin.models.preflight import check_run

EPILOG = ('Option files are read with a safe YAML loader; training states with torch.load(weights_only=True). '
          'Every plugin option is listed in docs/options.md.')


def command_line(prog, description, training):
    """The argument parser of one entry point (the arguments BasicSR's parse_options accepts)."""
    parser = argparse.ArgumentParser(prog=prog, description=description, epilog=EPILOG)
    parser.add_argument('-opt', type=str, required=True, help='Path to the option YAML file.')
    parser.add_argument('--launcher', choices=['none', 'pytorch', 'slurm'], default='none',
                        help='Job launcher: none (one process), pytorch (torchrun; gloo on CPU), slurm. '
                        'Default: none.')
    if training:
        parser.add_argument('--auto_resume', action='store_true',
                            help='Resume from the latest state in experiments/<name>/training_states.')
    parser.add_argument('--debug', action='store_true', help="BasicSR's debug mode (name prefixed with debug_).")
    parser.add_argument('--local_rank', type=int, default=0, help='Set by the launcher.')
    parser.add_argument('--force_yml', nargs='+', default=None,
                        help='Override option values, e.g. train:ema_decay=0.999.')
    return parser


def checked_parse_options(parse_options, prog):
    """BasicSR's ``parse_options`` followed by the plugin's checks of the parsed options (before any data loader
    or model is built). A bad option file or option ends the command with one line ``<prog>: error: ...`` (exit
    status 1)."""

    def parse(root_path, is_train=True):
        try:
            opt, args = parse_options(root_path, is_train)
            check_run(opt)
        except (OSError, ValueError, RuntimeError, yaml.YAMLError) as error:
            raise SystemExit(f'{prog}: error: {" ".join(str(error).split())}') from error
        return opt, args

    return parse
