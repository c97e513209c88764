"""The CPU-scale flow-versus-GAN run (scripts/flow_vs_gan.py --quick): all three study models train through BasicSR's
loop (SRModel, SRGANModel with VGGStyleDiscriminator, SRFlowModel with CouplingFlowNet) and are compared in one
table."""
import csv
import os
from os import path as osp

import cv2

import demo_data
import flow_vs_gan


def test_quick_run_trains_the_three_models_and_writes_table_grid_and_plot(tmp_path, capsys):
    rows = flow_vs_gan.main(['--quick', '--output', str(tmp_path)])
    out = capsys.readouterr().out
    temperatures = [f'{t:g}' for t in flow_vs_gan.TEMPERATURES]
    assert [(r['model'], r['temperature']) for r in rows] == [('SR (no GAN)', ''), ('SRGAN', '')] + [
        ('Flow', t) for t in temperatures]
    assert all(r['images'] == 12 and 0 < r['psnr'] < 60 and 0 < r['lr_psnr'] for r in rows)
    for name in ('SRResNet_small_x4', 'SRGAN_small_x4', 'Flow_small_x4'):
        assert osp.isfile(osp.join(tmp_path, 'experiments', name, 'models', 'net_g_latest.pth'))
    # SRGAN trained its discriminator and started from the SR (no GAN) weights
    assert osp.isfile(osp.join(tmp_path, 'experiments', 'SRGAN_small_x4', 'models', 'net_d_latest.pth'))
    assert 'Loading SRResNet model from' in open(osp.join(tmp_path, 'train_SRGAN_small_x4.log')).read()
    comparison = osp.join(tmp_path, 'comparison')
    with open(osp.join(comparison, 'comparison.csv')) as f:
        assert len(list(csv.DictReader(f))) == len(rows)
    assert cv2.imread(osp.join(comparison, 'grid.png')).shape[0] > 3 * demo_data.TEST_CROP
    assert osp.isfile(osp.join(comparison, 'temperature.png'))
    assert 'FID: not measured (pass --fid)' in out and '| model | temperature |' in out
    assert sorted(os.listdir(osp.join(comparison, 'outputs'))) == ['Flow', 'SR (no GAN)', 'SRGAN']
