"""The built-in demo (scripts/demo.py) in its quick mode: data, training, numbers and the picture grid."""
import json
import os
import subprocess
import sys
from os import path as osp

import cv2
import pytest

from srflow_plugin.inference.grid import GAP, label_height, tile_origin
from helpers.train import REPO, subprocess_env

BICUBIC_CAT_PSNR = 26.866  # MATLAB bicubic x4 of the demo's cat crop (its LR is MATLAB bicubic too), crop border 4


@pytest.fixture(scope='module')
def demo(tmp_path_factory):
    out = tmp_path_factory.mktemp('demo') / 'demo_output'
    result = subprocess.run([sys.executable, osp.join(REPO, 'scripts', 'demo.py'), '--quick', '--output', str(out)],
                            env=subprocess_env(), capture_output=True, text=True, timeout=240)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-5000:]
    with open(out / 'summary.json') as f:
        return out, json.load(f), result.stdout


def test_demo_trains_through_the_pipeline_for_the_requested_iterations(demo):
    out, summary, _ = demo
    models = osp.join(summary['experiment'], 'models')
    assert summary['iterations'] == 20
    assert sorted(os.listdir(models)) == ['net_g_20.pth', 'net_g_latest.pth']
    assert osp.isdir(osp.join(out, 'data', 'demo_train_sub.lmdb'))  # built from skimage photographs


def test_demo_reports_start_and_end_numbers_and_the_nll_drops(demo):
    _, summary, stdout = demo
    start, end = summary['start'], summary['end']
    assert set(start) == set(end) == {'nll', 'psnr', 'lr_psnr'}
    assert 0 < end['nll'] < start['nll']  # bits/dim of the 8-bit image: it learned
    assert 5 < start['psnr'] < 50 and 5 < end['psnr'] < 50 and 5 < end['lr_psnr'] < 80
    assert 'start' in stdout and 'end' in stdout and 'NLL (bits/dim)' in stdout


def test_demo_writes_a_grid_of_seven_tiles(demo):
    out, summary, _ = demo
    grid = cv2.imread(summary['grid'])
    gt = cv2.imread(osp.join(out, 'data', 'demo_val_mod4', 'chelsea.png'))
    h, w = gt.shape[:2]
    assert summary['grid'] == str(out / 'demo_grid.png')
    # one row: LR, bicubic, tau=0, 3 samples, GT
    assert grid.shape == (GAP + label_height(w) + h + GAP, GAP + 7 * (w + GAP), 3)
    y, x = tile_origin(0, 6, h, w)
    assert (grid[y:y + h, x:x + w] == gt).all()  # the last tile is the ground truth


def test_demo_tells_where_the_training_log_is_and_shows_progress(demo):
    out, _, stdout = demo
    assert f'log: {out / "train_output.log"}' in stdout
    assert 'iteration 20/20' in stdout  # the last iteration BasicSR's log reached


def test_demo_prints_bicubic_and_the_builtin_model_beside_the_trained_one(demo):
    _, summary, stdout = demo
    bicubic, builtin = summary['bicubic'], summary['builtin']
    assert set(bicubic) == {'psnr', 'lr_psnr'} and set(builtin) == {'nll', 'psnr', 'lr_psnr'}
    assert bicubic['psnr'] == pytest.approx(BICUBIC_CAT_PSNR, abs=0.01)  # MATLAB bicubic: the same on every machine
    assert builtin['psnr'] > bicubic['psnr'] + 0.3  # the cat is one of the built-in model's held-out photos
    rows = [line.split()[0] for line in stdout.splitlines()
            if line.strip().startswith(('start ', 'end ', 'bicubic ', 'built-in '))]
    assert rows == ['start', 'end', 'bicubic', 'built-in']
