"""Bootstrap spreads of the comparison table: resamples shared by every row, FID and KID recomputed per resample,
paired differences and their spread."""
import os
from os import path as osp

import cv2
import numpy as np
import pytest

from srflow_plugin.metrics import fid, kid
from srflow_plugin.metrics.bootstrap import bootstrap_values, image_resamples, paired_difference
from srflow_plugin.tools import compare
from helpers.features import colour_statistics, images
from helpers.train import write_pairs


def test_resamples_are_the_same_for_the_same_images_and_seed():
    assert np.array_equal(image_resamples(7, 5, seed=3), image_resamples(7, 5, seed=3))
    assert image_resamples(7, 5).shape == (5, 7) and image_resamples(7, 5).max() < 7


def test_per_image_metrics_and_fid_and_kid_are_recomputed_on_each_resample():
    sr, gt = images(12, 0, brightness=20), images(6, 1)
    features = fid.InceptionFeatures(feature_net=colour_statistics)
    for i, img in enumerate(sr):
        features.update(img, gt[i // 2])  # two samples per GT image
    psnr = np.arange(6.0)
    values = bootstrap_values({'psnr': psnr}, features, count=4, seed=1, kid_subsets=3)
    drawn = image_resamples(6, 4, seed=1)
    assert np.allclose(values['psnr'], psnr[drawn].mean(1))
    sr_features, gt_features = features.arrays()
    for b in (0, 3):
        x = np.concatenate([sr_features[2 * i:2 * i + 2] for i in drawn[b]])
        y = gt_features[drawn[b]]
        assert values['fid'][b] == pytest.approx(fid.frechet_distance(x, y), rel=1e-6)
        # KID of the resample: subsets of min(12, 6) = 6 members drawn with seed 1 + b
        k = [kid.polynomial_kernel(a, c)
             for a, c in ((sr_features, sr_features), (gt_features, gt_features), (sr_features, gt_features))]
        x_index = np.concatenate([[2 * i, 2 * i + 1] for i in drawn[b]])
        expected = kid.kernel_distance_of_kernels(*k, 3, 1000, 1 + b, x_index, drawn[b])[0]
        assert values['kid'][b] == pytest.approx(expected, rel=1e-9)


def test_metrics_of_different_image_counts_are_an_error():
    with pytest.raises(ValueError, match=r'different numbers of images: \[3, 4\]'):
        bootstrap_values({'psnr': [1, 2, 3], 'lpips': [1, 2, 3, 4]}, count=2)


def test_a_paired_difference_is_separated_when_its_interval_excludes_zero():
    rng = np.random.default_rng(0)
    b = rng.normal(10, 1, 200)
    shifted = paired_difference(11.0, 10.0, b + 1 + rng.normal(0, 0.1, 200), b)
    assert shifted['difference'] == 1.0 and shifted['separated'] and shifted['sd'] == pytest.approx(0.1, rel=0.2)
    noisy = paired_difference(10.1, 10.0, b + rng.normal(0.1, 1, 200), b)
    assert not noisy['separated'] and noisy['low'] < 0 < noisy['high']


def test_compare_with_bootstrap_gives_spreads_and_a_difference_table(tmp_path):
    gt, lr = write_pairs(tmp_path / 'data', 6, gt_size=32, seed=2)
    folders = {}
    for name, blur in (('sharp', 2), ('blurred', 7)):  # two "models" given as folders of outputs
        folders[name] = tmp_path / name
        folders[name].mkdir()
        for f in sorted(os.listdir(gt)):
            cv2.imwrite(str(folders[name] / f), cv2.blur(cv2.imread(osp.join(gt, f)), (blur, blur)))
    models = [compare.parse_model(f'{name}={folder}') for name, folder in folders.items()]
    rows, found = compare.compare(models, gt, lr, str(tmp_path / 'out'), 4, use_lpips=False,
                                  fid_features=colour_statistics, verbose=False, bootstrap=50)
    assert all(r['psnr_sd'] > 0 and r['fid_sd'] >= 0 and len(r['bootstrap']['kid']) == 50 for r in rows)
    table = compare.write_outputs(rows, found, str(tmp_path / 'out'), gt, lr, 4, grid_images=1)
    assert f"| sharp | - | {rows[0]['fid']:.3f} ± {rows[0]['fid_sd']:.3f} |" in table
    differences = open(tmp_path / 'out' / 'differences.md').read()
    # blurring with a 7x7 box loses far more than the spread over 6 images: PSNR and FID tell them apart
    assert '| blurred - sharp | PSNR |' in differences
    line = next(row for row in differences.splitlines() if row.startswith('| blurred - sharp | PSNR |'))
    assert line.endswith('| yes |')
    assert float(line.split('|')[3]) == pytest.approx(rows[1]['psnr'] - rows[0]['psnr'], abs=0.01)
