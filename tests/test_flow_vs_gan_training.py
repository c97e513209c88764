"""SRFlowModel trains any conditional flow with SRFlowNet's interface (here CouplingFlowNet, which has no encoder
and no ActNorm) and validates it per temperature, with FID accumulated over the validation set."""
import glob
from os import path as osp

import cv2
import numpy as np
import pytest
import torch

from srflow_plugin.metrics import FID, fid
from srflow_plugin.models.srflow_model import SRFlowModel
from helpers.train import make_opt, val_loader

TINY_FLOW = dict(type='CouplingFlowNet', scale=4, num_couplings=2, hidden_channels=8, hidden_layers=1,
                 cond_channels=4, cond_hidden=4)


def colour_statistics(x):
    """Stand-in for Inception: per-channel mean and standard deviation."""
    return torch.cat([x.mean((2, 3)), x.std((2, 3))], 1)


def flow_opt(tmp_path, **val):
    train = {'train_rrdb_delay': 0.5, 'optim_g': {'type': 'Adam', 'lr': 3e-3}}
    return make_opt(tmp_path, network_g=dict(TINY_FLOW), train=train,
                    val=dict({'heats': [0.0, 0.8], 'n_sample': 2}, **val))


def test_srflow_model_trains_a_coupling_flow_and_its_batchnorm_statistics(tmp_path):
    model = SRFlowModel(flow_opt(tmp_path))
    assert model.encoder_frozen_until == 0  # no encoder: train_rrdb_delay does not apply
    generator = torch.Generator().manual_seed(0)
    lq = torch.rand(4, 3, 8, 8, generator=generator)
    # the GT is predictable from the LR up to small noise: conditioning can lower the NLL a lot
    gt = torch.nn.functional.interpolate(lq, scale_factor=4, mode='nearest') + 0.02 * torch.rand(4, 3, 32, 32)
    data = {'lq': lq, 'gt': gt}
    losses = []
    for it in range(1, 13):
        model.feed_data(data)
        model.optimize_parameters(it)
        losses.append(model.log_dict['l_nll'])
    assert losses[-1] < losses[0] - 0.5 and model.log_dict['skipped_steps'] == 0
    norm = model.net_g.steps[0].norm
    assert not torch.equal(norm.running_mean, torch.zeros_like(norm.running_mean))


def test_validation_reports_fid_once_per_temperature_over_all_samples(tmp_path, monkeypatch):
    monkeypatch.setattr(fid, 'get_inception', lambda device=None: colour_statistics)
    metrics = {'psnr': {'type': 'calculate_psnr', 'crop_border': 0},
               'fid': {'type': 'FID', 'crop_border': 0, 'better': 'lower'}}
    model = SRFlowModel(flow_opt(tmp_path, metrics=metrics))
    model.validation(val_loader(3), 5, None, save_img=True)
    assert {'fid_t0', 'fid_t0.8', 'psnr_t0', 'psnr_t0.8', 'nll'} <= set(model.metric_results)
    assert model.best_metric_results['unitval']['fid_t0.8']['better'] == 'lower'
    # the same number from the saved samples: 3 images at tau = 0 (one sample each), 6 at tau = 0.8
    loader = val_loader(3)
    gts = [cv2.cvtColor((item['gt'][0].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8), cv2.COLOR_RGB2BGR)
           for item in loader]
    for temperature, count in (('0', 3), ('0.8', 6)):
        files = sorted(glob.glob(osp.join(model.opt['path']['visualization'], '*', f'*_t{temperature}_s*.png')))
        assert len(files) == count
        check = FID(feature_net=colour_statistics)
        for path in files:
            image = int(osp.basename(path)[3])  # val<i>_...
            check.update(cv2.imread(path), gts[image])
        assert model.metric_results[f'fid_t{temperature}'] == pytest.approx(check.compute(), rel=1e-6)


def test_a_pretrained_encoder_for_a_flow_without_encoder_is_an_error_naming_the_option(tmp_path):
    opt = flow_opt(tmp_path)
    opt['path']['pretrain_network_rrdb'] = str(tmp_path / 'RRDB.pth')
    with pytest.raises(ValueError, match=r'path.pretrain_network_rrdb is set, but network_g \(CouplingFlowNet\)'):
        SRFlowModel(opt)
