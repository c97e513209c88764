"""KID: the unbiased polynomial-kernel MMD^2 of torch-fidelity and clean-fid, against closed forms, its subsets,
and the dataset-level metric beside FID on the same features."""
import numpy as np
import pytest

from srflow_plugin.metrics import fid, kid
from helpers.features import colour_statistics, images


def test_two_constant_sets_give_the_kernel_closed_form():
    # X all u = (1, 0), Y all v = (0, 1), D = 2: k(u, u) = k(v, v) = (1/2 + 1)^3 = 3.375, k(u, v) = 1
    x, y = np.tile([1.0, 0.0], (5, 1)), np.tile([0.0, 1.0], (7, 1))
    value, spread = kid.kernel_distance(x, y, subsets=10)
    assert value == pytest.approx(3.375 + 3.375 - 2 * 1.0, abs=1e-12)
    assert spread == pytest.approx(0.0, abs=1e-12)  # every subset of a constant set is the same


def test_a_two_point_set_against_itself_is_negative_as_the_unbiased_estimate_can_be():
    # X = Y = {0, 1}, D = 1: k(0, 0) = 1, k(1, 1) = 8, k(0, 1) = 1;
    # MMD^2_u = 2 * 2 k01 / 2 - 2 (k00 + k11 + 2 k01) / 4 = k01 - (k00 + k11) / 2 = 1 - 4.5
    x = np.array([[0.0], [1.0]])
    assert kid.kernel_distance(x, x)[0] == pytest.approx(-3.5, abs=1e-12)


def test_three_points_by_hand():
    # D = 1, X = {0, 1, 2}, Y = {1, 1, 1}: k(a, b) = (a b + 1)^3
    # within X, i != j: 2 (k01 + k02 + k12) = 2 (1 + 1 + 27) = 58; within Y: 6 * 8 = 48; between: 3 (1 + 8 + 27) = 108
    x, y = np.array([[0.0], [1.0], [2.0]]), np.ones((3, 1))
    assert kid.kernel_distance(x, y)[0] == pytest.approx((58 + 48) / 6 - 2 * 108 / 9, abs=1e-12)


def test_subsets_have_the_size_of_the_smaller_set_capped_and_average_their_estimates():
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((40, 3)), rng.standard_normal((12, 3)) + 0.5
    k_xx, k_yy, k_xy = kid.polynomial_kernel(x, x), kid.polynomial_kernel(y, y), kid.polynomial_kernel(x, y)
    draws = np.random.default_rng(7)
    expected = []
    for _ in range(5):  # what kernel_distance does with seed 7: 10-member subsets of X and of Y
        xs, ys = draws.choice(40, 10, replace=False), draws.choice(12, 10, replace=False)
        a, b = k_xx[np.ix_(xs, xs)], k_yy[np.ix_(ys, ys)]
        expected.append((a.sum() - np.trace(a) + b.sum() - np.trace(b)) / 90 - 2 * k_xy[np.ix_(xs, ys)].mean())
    value, spread = kid.kernel_distance(x, y, subsets=5, subset_size=10, seed=7)
    assert value == pytest.approx(np.mean(expected), rel=1e-12)
    assert spread == pytest.approx(np.std(expected), rel=1e-9)


def test_kid_is_unbiased_where_the_plug_in_estimate_is_not():
    rng = np.random.default_rng(1)
    unbiased, biased = [], []
    for _ in range(200):  # two small sets from one Gaussian: the true MMD is 0
        x, y = rng.standard_normal((10, 4)), rng.standard_normal((10, 4))
        unbiased.append(kid.kernel_distance(x, y)[0])
        k_xx, k_yy, k_xy = kid.polynomial_kernel(x, x), kid.polynomial_kernel(y, y), kid.polynomial_kernel(x, y)
        biased.append(k_xx.mean() + k_yy.mean() - 2 * k_xy.mean())
    assert abs(np.mean(unbiased)) < 3 * np.std(unbiased) / np.sqrt(200)
    assert np.mean(biased) > 10 * np.std(biased) / np.sqrt(200)


def test_kid_metric_uses_the_features_fid_uses_and_counts_each_gt_once():
    sr, gt = images(8, 0, brightness=30), images(4, 1)
    metric, fid_metric = kid.KID(feature_net=colour_statistics), fid.FID(feature_net=colour_statistics)
    for i, img in enumerate(sr):
        metric.update(img, gt[i % 4])
        fid_metric.update(img, gt[i % 4])
    assert len(metric.sr_features) == 8 and len(metric.gt_features) == 4
    assert np.array_equal(metric.arrays()[0], fid_metric.arrays()[0])
    assert metric.compute() == pytest.approx(kid.kernel_distance(*fid_metric.arrays())[0], rel=1e-12)
    assert metric.compute() > 0


def test_kid_of_fewer_than_two_images_or_of_other_dimensions_is_an_error():
    with pytest.raises(ValueError, match='at least 2 images'):
        kid.kernel_distance(np.zeros((1, 4)), np.zeros((3, 4)))
    with pytest.raises(ValueError, match=r'shapes \(3, 4\) and \(3, 5\)'):
        kid.kernel_distance(np.zeros((3, 4)), np.zeros((3, 5)))
