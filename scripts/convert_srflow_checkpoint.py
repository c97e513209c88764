"""Converts a released SRFlow checkpoint (SRFlow_DF2K_4X.pth, ...) into a BasicSR checkpoint of SRFlowNet.

    python scripts/convert_srflow_checkpoint.py SRFlow_DF2K_4X.pth -o experiments/pretrained_models/SRFlow_DF2K_4X.pth

The configuration is taken from the file name for the three released models, or given with --config, or spelled
out with the network options. The output holds ``params`` (as BasicSR's load_network expects) and ``network_g``
(the SRFlowNet arguments, so tools can rebuild the network without an option file).
"""
import argparse
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from srflow_plugin.archs import RELEASED_CONFIGS, SRFlowNet, convert_release_state_dict  # noqa: E402
from srflow_plugin.utils import load_weights  # noqa: E402


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


def convert(checkpoint, output, config):
    """Converts ``checkpoint`` for SRFlowNet(**config) and writes ``output`` atomically. Returns the network."""
    state_dict = torch.load(checkpoint, map_location='cpu', weights_only=True)
    if isinstance(state_dict, dict) and isinstance(state_dict.get('state_dict'), dict):
        state_dict = state_dict['state_dict']
    net = SRFlowNet(**config)
    try:
        load_weights(net, convert_release_state_dict(state_dict, net), f'{checkpoint} (for SRFlowNet({config}))')
    except ValueError as error:
        raise SystemExit(str(error))
    os.makedirs(os.path.dirname(os.path.abspath(output)), exist_ok=True)
    partial = output + '.partial'
    torch.save({'params': net.state_dict(), 'network_g': {'type': 'SRFlowNet', **config}}, partial)
    os.replace(partial, output)  # never leave a half-written checkpoint under the final name
    return net


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
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
    config = network_config(args)
    net = convert(args.checkpoint, args.output, config)
    print(f'wrote {args.output}: SRFlowNet({config}), {sum(p.numel() for p in net.parameters()):,} parameters')


if __name__ == '__main__':
    main()
