"""The SRFlow release's reference fixtures (``../shared/reference``) and networks built from them."""
import os
from pathlib import Path

import pytest
import torch

from srflow_plugin.archs import SRFlowNet, convert_release_state_dict

REPO = Path(__file__).resolve().parents[2]
REFERENCE = Path(os.environ.get('SRFLOW_REFERENCE_DIR', REPO.parent / 'shared' / 'reference'))


def release_fixture(scale):
    """The release's tiny x<scale> fixture (its config, state dict, inputs and outputs); skips the test where
    ../shared/reference is not beside the repository."""
    path = REFERENCE / f'srflow_official_tiny_x{scale}.pt'
    if not path.is_file():
        pytest.skip(f'{path} is not here (the release fixtures live in ../shared/reference beside the repository)')
    return torch.load(path, weights_only=True)


def net_for(config):
    """An SRFlowNet laid out as the release's configuration ``config`` says."""
    return SRFlowNet(scale=config['scale'], num_feat=config['nf'], num_block=config['nb'], num_grow_ch=config['gc'],
                     tap_blocks=config['stack_blocks'], flow_steps=config['K'],
                     plain_steps=config['additional_flow_no_affine'],
                     hidden_channels=config['coupling_hidden_channels'], trunk_skip='trunk').eval()


def converted_release_net(data):
    """The release fixture's network, its weights converted to this plugin's names."""
    net = net_for(data['config'])
    net.load_state_dict(convert_release_state_dict(data['state_dict'], net), strict=True)
    return net
