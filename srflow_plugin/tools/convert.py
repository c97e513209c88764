"""Converts a released SRFlow checkpoint (SRFlow_DF2K_4X.pth, ...) into a BasicSR checkpoint of SRFlowNet.

    srflow-convert SRFlow_DF2K_4X.pth -o experiments/pretrained_models/SRFlow_DF2K_4X.pth

The configuration is taken from the file name for the three released models, or given with --config, or spelled
out with the network options. The output holds ``params`` (as BasicSR's load_network expects) and ``network_g``
(the SRFlowNet arguments, so tools can rebuild the network without an option file).
"""
import argparse
import os
import sys

from srflow_plugin.archs.release_checkpoint import RELEASED_CONFIGS, load_release_checkpoint
from srflow_plugin.tools.command import HelpFormatter, console_command
from srflow_plugin.utils.checkpoint import save_srflow
from srflow_plugin.utils.paths import check_outputs


def network_config(args):
    stem = os.path.splitext(os.path.basename(args.checkpoint))[0]
    name = args.config or (stem if stem in RELEASED_CONFIGS else None)
    if name is not None and name not in RELEASED_CONFIGS:
        raise SystemExit(f'--config {name} is not one of {sorted(RELEASED_CONFIGS)}')
    config = dict(RELEASED_CONFIGS[name]) if name else {'trunk_skip': 'trunk'}
    for key in ('scale', 'num_feat', 'num_block', 'num_grow_ch', 'tap_blocks', 'flow_steps', 'plain_steps',
                'hidden_channels'):
        if getattr(args, key) is not None:
            config[key] = getattr(args, key)
    if name is None and not {'scale', 'tap_blocks'} <= set(config):
        raise SystemExit(f'{args.checkpoint}: not a released file name ({sorted(RELEASED_CONFIGS)}); give --config '
                         'or at least --scale and --tap_blocks')
    config['tap_blocks'] = list(config['tap_blocks'])
    return config


def main(argv=None):
    parser = argparse.ArgumentParser(prog='srflow-convert', description=__doc__,
                                     formatter_class=HelpFormatter)
    parser.add_argument('checkpoint', help='released SRFlow checkpoint (.pth)')
    parser.add_argument('-o', '--output', required=True, help='BasicSR checkpoint to write')
    parser.add_argument('--config', help=f'one of {sorted(RELEASED_CONFIGS)} (default: from the file name)')
    parser.add_argument('--scale', type=int)
    parser.add_argument('--num_feat', type=int)
    parser.add_argument('--num_block', type=int)
    parser.add_argument('--num_grow_ch', type=int)
    parser.add_argument('--tap_blocks', type=int, nargs='+')
    parser.add_argument('--flow_steps', type=int)
    parser.add_argument('--plain_steps', type=int)
    parser.add_argument('--hidden_channels', type=int)
    args = parser.parse_args(argv)
    check_outputs({'-o': args.output}, {'checkpoint': args.checkpoint})
    config = network_config(args)
    net = load_release_checkpoint(args.checkpoint, config)
    save_srflow(net, args.output, {'type': 'SRFlowNet', **config})
    print(f'wrote {args.output}: SRFlowNet({config}), {sum(p.numel() for p in net.parameters()):,} parameters')


cli = console_command(main, 'srflow-convert')

if __name__ == '__main__':
    sys.exit(cli())
