"""srflow-compare: runs models from option files and checkpoints (or reads their outputs), writes the table as
markdown and CSV, the picture grid and the metric-vs-temperature plot; srflow-measure --fid."""
import csv
import os
from os import path as osp

import cv2
import numpy as np
import pytest
import torch
import yaml
from basicsr.archs import build_network
from basicsr.metrics import calculate_psnr

from srflow_plugin.inference import measuring
from srflow_plugin.inference.grid import GAP, label_height
from srflow_plugin.metrics import FID
from srflow_plugin.tools import compare
from helpers.train import write_pairs

SR_NET = dict(type='SRResNet', num_feat=8, num_block=1, upscale=4)
FLOW_NET = dict(type='CouplingFlowNet', num_couplings=2, hidden_channels=8, cond_channels=4, cond_hidden=4)


def colour_statistics(x):
    return torch.cat([x.mean((2, 3)), x.std((2, 3))], 1)


def write_model(tmp_path, name, network_g, seed):
    torch.manual_seed(seed)
    net = build_network(dict(network_g))
    with torch.no_grad():
        for p in net.parameters():
            p.add_(torch.randn_like(p) * 0.02)
    ckpt = osp.join(str(tmp_path), f'{name}.pth')
    torch.save({'params': net.state_dict()}, ckpt)
    yml = osp.join(str(tmp_path), f'{name}.yml')
    with open(yml, 'w') as f:
        yaml.safe_dump({'network_g': network_g, 'path': {'pretrain_network_g': ckpt}}, f)
    return yml, net


@pytest.fixture(scope='module')
def compared(tmp_path_factory):
    root = tmp_path_factory.mktemp('compare')
    gt, lr = write_pairs(root / 'data', 3, gt_size=32, seed=5)
    sr_yml, sr_net = write_model(root, 'sr', SR_NET, 0)
    flow_yml, _ = write_model(root, 'flow', FLOW_NET, 1)
    # a third model given as a folder of outputs: bicubic upscaling
    bicubic = root / 'bicubic'
    bicubic.mkdir()
    for name in sorted(os.listdir(lr)):
        lq = cv2.imread(osp.join(lr, name))
        cv2.imwrite(str(bicubic / name), cv2.resize(lq, (32, 32), interpolation=cv2.INTER_CUBIC))
    models = [compare.parse_model(f'SR={sr_yml}'), compare.parse_model(f'Flow={flow_yml}'),
              compare.parse_model(f'Bicubic={bicubic}')]
    out = str(root / 'out')
    rows, folders = compare.compare(models, gt, lr, out, 4, temperatures=[0.0, 0.5, 1.0], samples=2,
                                    use_lpips=False, fid_features=colour_statistics, verbose=False)
    table = compare.write_outputs(rows, folders, out, gt, lr, 4, grid_images=2)
    return dict(root=root, gt=gt, lr=lr, rows=rows, folders=folders, out=out, table=table, sr_net=sr_net)


def test_one_row_per_model_and_flow_temperature(compared):
    assert [(r['model'], r['temperature']) for r in compared['rows']] == [
        ('SR', ''), ('Flow', '0'), ('Flow', '0.5'), ('Flow', '1'), ('Bicubic', '')]
    assert [r['samples'] for r in compared['rows']] == [3, 3, 6, 6, 3]


def test_run_model_outputs_are_the_network_outputs_and_the_psnr_their_mean(compared):
    gt, lr = compared['gt'], compared['lr']
    psnrs = []
    for name in sorted(os.listdir(lr)):
        lq = torch.from_numpy(cv2.imread(osp.join(lr, name))[..., ::-1].copy()).permute(2, 0, 1)[None].float() / 255
        with torch.no_grad():
            expected = compared['sr_net'].eval()(lq).clamp(0, 1)[0].permute(1, 2, 0).numpy()[..., ::-1]
        written = cv2.imread(osp.join(compared['folders']['SR'], name))
        assert np.abs(written.astype(float) - np.round(expected * 255)).max() <= 1
        psnrs.append(calculate_psnr(written, cv2.imread(osp.join(gt, name)), crop_border=0))
    assert compared['rows'][0]['psnr'] == pytest.approx(np.mean(psnrs), rel=1e-9)


def test_fid_of_a_row_is_over_all_its_samples(compared):
    check = FID(feature_net=colour_statistics)
    folder = compared['folders']['Flow']
    files = sorted(f for f in os.listdir(folder) if '_t0.5_' in f)
    for f in files:
        check.update(cv2.imread(osp.join(folder, f)), cv2.imread(osp.join(compared['gt'], f.split('_t')[0] + '.png')))
    assert len(files) == 6 and compared['rows'][2]['fid'] == pytest.approx(check.compute(), rel=1e-9)


def test_markdown_and_csv_tables_hold_the_rows(compared):
    md = open(osp.join(compared['out'], 'comparison.md')).read()
    assert md == compared['table']
    # no LPIPS here, so no LPIPS and no diversity (it is made of LPIPS maps) columns
    assert md.splitlines()[0] == '| model | temperature | FID | KID | PSNR | SSIM | LR-PSNR | images | samples |'
    sr = compared['rows'][0]
    assert f"| SR | - | {sr['fid']:.3f} | {sr['kid']:.4f} | {sr['psnr']:.2f} |" in md
    with open(osp.join(compared['out'], 'comparison.csv')) as f:
        rows = list(csv.DictReader(f))
    assert [r['model'] for r in rows] == ['SR', 'Flow', 'Flow', 'Flow', 'Bicubic']
    assert float(rows[3]['psnr']) == pytest.approx(compared['rows'][3]['psnr'])


def test_grid_has_lr_bicubic_each_model_and_gt_per_image_and_the_plot_is_written(compared):
    grid = cv2.imread(osp.join(compared['out'], 'grid.png'))
    tile = 32  # the whole 32x32 image (the default crop is the centre square of side min(H, W, 128))
    assert grid.shape[1] == GAP + 6 * (tile + GAP)  # LR, bicubic, SR, Flow, Bicubic, GT
    assert grid.shape[0] == GAP + 2 * (label_height(tile) + tile + GAP)
    y, x = GAP + label_height(tile), GAP + 5 * (tile + GAP)
    gt0 = cv2.imread(osp.join(compared['gt'], sorted(os.listdir(compared['gt']))[0]))
    assert np.array_equal(grid[y:y + tile, x:x + tile], gt0)
    plot = cv2.imread(osp.join(compared['out'], 'temperature.png'))
    assert plot is not None and plot.shape == (260, 720, 3)


def test_model_specs_that_name_nothing_are_errors(tmp_path):
    with pytest.raises(ValueError, match='NAME=FOLDER'):
        compare.parse_model('just_a_path')
    with pytest.raises(FileNotFoundError, match='neither a folder of outputs nor an option file'):
        compare.parse_model(f'X={tmp_path}/missing.yml')
    yml = tmp_path / 'o.yml'
    yml.write_text('network_g: {type: SRResNet}\n')
    with pytest.raises(FileNotFoundError, match='No checkpoint for'):
        compare.load_network(str(yml))


def test_measure_fid_is_in_the_mean_row_only(compared):
    rows = measuring.measure(compared['folders']['Bicubic'], compared['gt'], compared['lr'], use_lpips=False,
                             verbose=False, fid=True, fid_features=colour_statistics)
    assert 'fid' not in rows[0] and rows[-1]['fid'] == pytest.approx(compared['rows'][4]['fid'], rel=1e-9)
