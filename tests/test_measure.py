"""srflow-measure (srflow_plugin.tools.measure over srflow_plugin.inference.measuring): sample grouping, metrics with
known answers, CSV and markdown output."""
import csv
import math
import os
from os import path as osp

import cv2
import numpy as np
import pytest
import torch

from srflow_plugin.inference import measuring
from srflow_plugin.metrics import diversity_score, lpips_distance
from srflow_plugin.tools import measure
from srflow_plugin.utils.sampling import temperature_of


def _random(seed, h=32, w=32):
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def _write(folder, name, img):
    os.makedirs(osp.dirname(osp.join(folder, name)), exist_ok=True)
    cv2.imwrite(osp.join(folder, name), img)


def _bgr_to_tensor(img):
    return torch.from_numpy(img[:, :, ::-1].copy()).permute(2, 0, 1)[None].float() / 255


# ---------------------------------------------------------------------------------------------------
# naming rule


def test_sr_files_belong_to_the_longest_gt_stem_followed_by_an_underscore():
    gt_stems = ['0801', '0801_b', '0802']
    sr = ['r/0801.png', 'r/0801_s0.png', 'r/0801_b_s1.png', 'r/sub/0802_t0.9_s3.png']
    assert measuring.group_samples(sr, gt_stems) == {
        '0801': ['r/0801.png', 'r/0801_s0.png'],
        '0801_b': ['r/0801_b_s1.png'],
        '0802': ['r/sub/0802_t0.9_s3.png'],
    }


def test_an_sr_file_without_gt_is_an_error_naming_it():
    with pytest.raises(ValueError, match='08010.png'):
        measuring.group_samples(['r/0801_s0.png', 'r/08010.png'], ['0801'])


def test_the_temperature_tag_is_read_from_sample_py_names_after_the_gt_stem():
    assert temperature_of('r/0801_t0.9_s3.png', '0801') == '0.9'
    assert temperature_of('r/0801_t0_s0.png', '0801') == '0'
    assert temperature_of('r/0801_b_t1e-05_s12.png', '0801_b') == '1e-05'
    assert temperature_of('r/0801_s0.png', '0801') is None
    assert temperature_of('r/0801_tx_s0.png', '0801') is None
    assert temperature_of('r/x_t1_s2.png', 'x_t1_s2') is None  # the tag is part of the GT name


GROUPS = {'a': ['r/a_t0.8_s0.png', 'r/a_t0.9_s0.png', 'r/a_t0.9_s1.png', 'r/a_t0_s0.png'],
          'b': ['r/b_t0.9_s0.png'],
          'c': ['r/c.png', 'r/c_t0.8_s0.png']}


def test_temperature_keeps_only_the_files_with_its_tag_as_sample_py_writes_it():
    expected = {'a': ['r/a_t0.9_s0.png', 'r/a_t0.9_s1.png'], 'b': ['r/b_t0.9_s0.png']}
    assert measuring.select_temperature(GROUPS, 0.9) == expected
    assert measuring.select_temperature(GROUPS, 0.90) == expected
    assert measuring.select_temperature(GROUPS, 0) == {'a': ['r/a_t0_s0.png']}
    assert measuring.select_temperature(GROUPS, 0.8) == {'a': ['r/a_t0.8_s0.png'], 'c': ['r/c_t0.8_s0.png']}


def test_several_temperatures_of_one_image_without_temperature_are_an_error_naming_them():
    with pytest.raises(ValueError, match=r'SR files of a carry 3 temperatures \(0, 0\.8, 0\.9\).*'
                       r'Pass --temperature'):
        measuring.select_temperature(GROUPS)


def test_one_temperature_per_image_and_untagged_files_are_kept_as_before():
    groups = {'b': GROUPS['b'], 'c': GROUPS['c'], 'd': ['r/d.png', 'r/d_s1.png']}
    assert measuring.select_temperature(groups) == groups


def test_lr_file_is_the_gt_stem_or_the_div2k_name():
    lr = ['l/0801x4.png', 'l/0802.png', 'l/0803x4b.png']
    assert measuring.find_lr(lr, '0801') == 'l/0801x4.png'
    assert measuring.find_lr(lr, '0802') == 'l/0802.png'
    assert measuring.find_lr(lr, '0803') is None


# ---------------------------------------------------------------------------------------------------
# metrics of one image


def test_identical_sr_and_gt(lpips_hub):
    gt = _random(0)
    row = measuring.measure_image([gt.copy()], gt, scale=4)
    assert row['samples'] == 1
    assert row['psnr'] == row['psnr_y'] == row['lr_psnr_gt'] == float('inf')
    assert row['ssim'] == pytest.approx(1.0) and row['ssim_y'] == pytest.approx(1.0)
    assert row['lpips'] == 0.0
    assert 'diversity' not in row  # one sample has no diversity


def test_n_identical_samples_have_diversity_zero(lpips_hub):
    gt, sr = _random(0), _random(1)
    row = measuring.measure_image([sr, sr.copy(), sr.copy()], gt, scale=4)
    assert row['diversity'] == 0.0
    assert row['lpips'] > 0


def test_diversity_comes_from_the_spatial_lpips_maps_of_the_samples(lpips_hub):
    gt, samples = _random(0), [_random(1), _random(2)]
    maps = torch.cat([lpips_distance(_bgr_to_tensor(s), _bgr_to_tensor(gt), spatial=True) for s in samples])
    row = measuring.measure_image(samples, gt, scale=4)
    assert row['diversity'] == pytest.approx(diversity_score(maps), rel=1e-6)
    assert row['diversity'] > 0


def test_lr_psnr_of_both_definitions():
    sr = np.full((32, 32, 3), 100, np.uint8)
    row = measuring.measure_image([sr], sr.copy(), lq=np.full((8, 8, 3), 103, np.uint8), use_lpips=False)
    assert row['lr_psnr'] == pytest.approx(20 * math.log10(255 / 3))  # against the LR input
    assert row['lr_psnr_gt'] == float('inf')  # downscaled SR equals downscaled GT


def test_metrics_are_the_mean_over_the_samples():
    gt = np.full((16, 16, 3), 100, np.uint8)
    row = measuring.measure_image([gt + 1, gt + 2], gt, scale=4, use_lpips=False)
    assert row['psnr'] == pytest.approx((20 * math.log10(255) + 20 * math.log10(255 / 2)) / 2)


def test_gt_larger_by_less_than_the_scale_is_cropped_to_the_sr_size():
    gt = _random(0, 35, 34)
    row = measuring.measure_image([gt[:32, :32]], gt, lq=np.zeros((8, 8, 3), np.uint8), use_lpips=False)
    assert row['psnr'] == float('inf')
    with pytest.raises(ValueError, match=r'GT .*\(36, 32, 3\)'):
        measuring.measure_image([gt[:32, :32]], _random(0, 36, 32), scale=4, use_lpips=False)


# ---------------------------------------------------------------------------------------------------
# folders, tables, command line


@pytest.fixture
def folders(tmp_path):
    """GT a, b (32x32); SR: two different samples of a, b equal to its GT; LR named ax4.png and b.png."""
    gt, sr, lr = str(tmp_path / 'gt'), str(tmp_path / 'sr'), str(tmp_path / 'lr')
    a, b = _random(0), np.full((32, 32, 3), 90, np.uint8)
    _write(gt, 'a.png', a)
    _write(gt, 'b.png', b)
    _write(gt, 'c.png', a)  # no SR: skipped
    _write(sr, 'a_s0.png', _random(1))
    _write(sr, 'a/a_s1.png', _random(2))
    _write(sr, 'b.png', b)
    _write(lr, 'ax4.png', np.zeros((8, 8, 3), np.uint8))
    _write(lr, 'b.png', np.full((8, 8, 3), 92, np.uint8))
    return sr, gt, lr


def test_measure_gives_a_row_per_image_and_the_mean(folders, lpips_hub):
    sr, gt, lr = folders
    rows = measuring.measure(sr, gt, lr, verbose=False)
    assert [r['image'] for r in rows] == ['a', 'b', 'mean']
    assert [r['samples'] for r in rows] == [2, 1, 3]
    a, b, mean = rows
    assert b['psnr'] == float('inf') and mean['psnr'] == float('inf')
    assert b['lpips'] == 0.0 and mean['lpips'] == pytest.approx(a['lpips'] / 2)
    assert b['lr_psnr'] == pytest.approx(20 * math.log10(255 / 2))
    assert 'diversity' in a and 'diversity' not in b and mean['diversity'] == a['diversity']
    assert mean['ssim'] == pytest.approx((a['ssim'] + 1) / 2)


def test_csv_and_markdown_tables(folders):
    sr, gt, lr = folders
    rows = measuring.measure(sr, gt, lr, use_lpips=False, verbose=False)
    measuring.write_csv(rows, osp.join(sr, 'm.csv'))
    with open(osp.join(sr, 'm.csv')) as f:
        table = list(csv.DictReader(f))
    assert list(table[0]) == ['image', 'samples', 'psnr', 'ssim', 'psnr_y', 'ssim_y', 'lr_psnr', 'lr_psnr_gt']
    assert [r['image'] for r in table] == ['a', 'b', 'mean']
    assert table[1]['psnr'] == 'inf' and float(table[0]['psnr']) == pytest.approx(rows[0]['psnr'])
    md = measuring.format_markdown(rows).splitlines()
    assert md[0] == '| image | samples | PSNR | SSIM | PSNR-Y | SSIM-Y | LR-PSNR (LR input) | ' \
                    'LR-PSNR (NTIRE, downscaled GT) |'
    assert len(md) == 2 + 3
    assert md[3] == f"| b | 1 | inf | 1.0000 | inf | 1.0000 | {20 * math.log10(255 / 2):.2f} | inf |"


def test_command_line_writes_csv_and_markdown_and_prints(folders, lpips_hub, capsys):
    sr, gt, _ = folders
    measure.main(['--sr', sr, '--gt', gt, '--scale', '4'])
    printed = capsys.readouterr().out
    with open(osp.join(sr, 'metrics.md')) as f:
        md = f.read()
    assert md in printed
    assert md.splitlines()[0].endswith('| LPIPS | LR-PSNR (NTIRE, downscaled GT) | diversity |')
    with open(osp.join(sr, 'metrics.csv')) as f:
        assert [r['image'] for r in csv.DictReader(f)] == ['a', 'b', 'mean']


def test_missing_alexnet_weights_stop_the_command_unless_no_lpips(folders, tmp_path, monkeypatch):
    sr, gt, _ = folders
    monkeypatch.setattr(torch.hub, '_hub_dir', str(tmp_path / 'empty_hub'))
    with pytest.raises(SystemExit, match=r'alexnet-owt-7be5be79\.pth[\s\S]*--no_lpips'):
        measure.main(['--sr', sr, '--gt', gt, '--scale', '4'])
    rows = measure.main(['--sr', sr, '--gt', gt, '--scale', '4', '--no_lpips'])
    assert 'lpips' not in rows[-1] and rows[1]['psnr'] == float('inf')


@pytest.fixture
def sampled(tmp_path):
    """GT a (32x32) and srflow-sample-style SR files at tau = 0 (= GT) and 0.9 (two random samples)."""
    gt, sr = str(tmp_path / 'gt'), str(tmp_path / 'sr')
    a = _random(0)
    _write(gt, 'a.png', a)
    _write(sr, 'a_t0_s0.png', a)
    _write(sr, 'a_t0.9_s0.png', _random(1))
    _write(sr, 'a_t0.9_s1.png', _random(2))
    return sr, gt


def test_measuring_sample_py_output_needs_one_temperature(sampled):
    sr, gt = sampled
    with pytest.raises(ValueError, match=r'SR files of a carry 2 temperatures \(0, 0\.9\).*--temperature'):
        measuring.measure(sr, gt, scale=4, use_lpips=False, verbose=False)
    with pytest.raises(ValueError, match=r'SR files of a carry 2 temperatures'):
        measure.main(['--sr', sr, '--gt', gt, '--scale', '4', '--no_lpips'])
    zero = measure.main(['--sr', sr, '--gt', gt, '--scale', '4', '--no_lpips', '--temperature', '0'])
    assert zero[0]['samples'] == 1 and zero[0]['psnr'] == float('inf')
    hot = measuring.measure(sr, gt, scale=4, use_lpips=False, verbose=False, temperature=0.9)
    both = measuring.measure_image([_random(1), _random(2)], _random(0), scale=4, use_lpips=False)
    assert hot[0]['samples'] == 2 and hot[0]['psnr'] == pytest.approx(both['psnr'])


def test_a_temperature_without_files_is_an_error_naming_it(sampled):
    sr, gt = sampled
    with pytest.raises(ValueError, match=r'No SR images in .* at temperature 0\.8 \(<image>_t0\.8_s<k>\.png\)'):
        measuring.measure(sr, gt, scale=4, use_lpips=False, verbose=False, temperature=0.8)


def test_image_extensions_are_recognised_in_any_case(tmp_path):
    gt, sr = str(tmp_path / 'gt'), str(tmp_path / 'sr')
    a, b = _random(0), _random(1)
    _write(gt, 'a.Png', a)
    _write(gt, 'b.PNG', b)
    _write(sr, 'a_s0.pNg', a)
    _write(sr, 'b.png', b)
    with open(osp.join(sr, 'notes.txt'), 'w') as f:  # not an image extension: ignored
        f.write('not an image')
    rows = measuring.measure(sr, gt, scale=4, use_lpips=False, verbose=False)
    assert [(r['image'], r['samples'], r['psnr']) for r in rows] == [('a', 1, float('inf')), ('b', 1, float('inf')),
                                                                     ('mean', 2, float('inf'))]


def test_lr_folder_or_scale_is_required(folders):
    sr, gt, _ = folders
    with pytest.raises(ValueError, match='scale'):
        measuring.measure(sr, gt, use_lpips=False)
