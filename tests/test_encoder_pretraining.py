"""The encoder alone is a plain SR network that BasicSR's own SRModel pre-trains with L1, x8 included."""
import os
from os import path as osp

import torch
import yaml
from basicsr.models import build_model

from srflow_plugin.archs import SRFlowNet, SRFlowRRDBNet, load_encoder_weights

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))


def sr_model_opt(tmp_path, network_g):
    root = osp.join(str(tmp_path), 'experiments', 'rrdb')
    return {
        'name': 'rrdb', 'model_type': 'SRModel', 'scale': network_g['scale'], 'num_gpu': 0, 'is_train': True,
        'dist': False, 'rank': 0, 'world_size': 1, 'network_g': network_g,
        'path': {'pretrain_network_g': None, 'strict_load_g': True, 'resume_state': None, 'experiments_root': root,
                 'models': osp.join(root, 'models'), 'training_states': osp.join(root, 'training_states'),
                 'log': root, 'visualization': osp.join(root, 'visualization')},
        'train': {'ema_decay': 0, 'pixel_opt': {'type': 'L1Loss', 'loss_weight': 1.0, 'reduction': 'mean'},
                  'optim_g': {'type': 'Adam', 'lr': 2e-3},
                  'scheduler': {'type': 'MultiStepLR', 'milestones': [100], 'gamma': 0.5}, 'total_iter': 100},
    }


def test_basicsr_srmodel_trains_the_x8_encoder_with_l1_and_its_checkpoint_feeds_srflow(tmp_path):
    torch.manual_seed(0)
    network_g = {'type': 'SRFlowRRDBNet', 'num_in_ch': 3, 'num_out_ch': 3, 'scale': 8, 'num_feat': 8,
                 'num_block': 1, 'num_grow_ch': 4, 'trunk_skip': 'trunk'}
    model = build_model(sr_model_opt(tmp_path, network_g))
    assert isinstance(model.net_g, SRFlowRRDBNet)
    # smooth images: their x8 detail is predictable from the LR, so the L1 loss can really fall
    gt = torch.nn.functional.interpolate(torch.rand(2, 3, 4, 4), size=32, mode='bilinear', align_corners=False)
    lq = torch.nn.functional.avg_pool2d(gt, 8)
    losses = []
    for it in range(1, 61):
        model.feed_data({'lq': lq, 'gt': gt})
        model.optimize_parameters(it)
        losses.append(model.log_dict['l_pix'])
    assert model.net_g(lq).shape == (2, 3, 32, 32)
    assert losses[-1] < 0.7 * losses[0]  # measured: about 0.2 -> 0.13 in 60 steps
    # the saved BasicSR checkpoint is a pretrained encoder for SRFlowNet (path.pretrain_network_rrdb)
    os.makedirs(model.opt['path']['models'])  # BasicSR's train pipeline makes it; here the test does
    model.save_network(model.net_g, 'net_g', 60)
    net = SRFlowNet(scale=8, num_feat=8, num_block=1, num_grow_ch=4, tap_blocks=(0, ), flow_steps=1,
                    hidden_channels=8, trunk_skip='trunk')
    load_encoder_weights(net.encoder, osp.join(str(tmp_path), 'experiments', 'rrdb', 'models', 'net_g_60.pth'))
    assert torch.equal(net.encoder.conv_up3.weight, model.net_g.conv_up3.weight)


def test_shipped_x8_pretraining_options_build_the_encoder():
    with open(osp.join(REPO, 'options', 'train_RRDB_x8.yml')) as f:
        opt = yaml.safe_load(f)
    assert opt['model_type'] == 'SRModel' and opt['train']['pixel_opt']['type'] == 'L1Loss'
    config = {k: v for k, v in opt['network_g'].items() if k != 'type'}
    encoder = SRFlowRRDBNet(**config)
    assert opt['network_g']['type'] == 'SRFlowRRDBNet' and encoder.scale == 8
    assert sum(p.numel() for p in encoder.parameters()) == 16_734_915  # the release's x8 RRDB
