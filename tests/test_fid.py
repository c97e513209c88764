"""FID: the Fréchet distance against its closed form, the accumulating pipeline with a stand-in feature network,
and a clear error when the Inception weights are missing."""
import os

import numpy as np
import pytest

from srflow_plugin.metrics import fid
from helpers.features import colour_statistics, images


def gaussian_features(mean, cov, n, seed):
    """n samples whose sample mean and unbiased covariance are exactly ``mean`` and ``cov``."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, len(mean)))
    x -= x.mean(0)
    x = x @ np.linalg.inv(np.linalg.cholesky(np.cov(x, rowvar=False)).T)  # whitened: covariance exactly I
    return x @ np.linalg.cholesky(cov).T + mean


def test_frechet_distance_of_diagonal_gaussians_is_the_closed_form():
    mu1, mu2 = np.array([0.0, 1.0, 2.0]), np.array([1.0, -1.0, 2.0])
    var1, var2 = np.array([1.0, 4.0, 9.0]), np.array([4.0, 1.0, 0.25])
    got = fid.frechet_distance(gaussian_features(mu1, np.diag(var1), 50, 0),
                               gaussian_features(mu2, np.diag(var2), 60, 1))
    # ||mu1 - mu2||^2 + sum (sqrt(v1) - sqrt(v2))^2 = 5 + (1 + 1 + 6.25)
    assert got == pytest.approx(5.0 + 1.0 + 1.0 + 6.25, rel=1e-6)


def test_frechet_distance_of_scaled_correlated_gaussians_is_the_closed_form():
    cov = np.array([[2.0, 0.8, 0.3], [0.8, 1.0, -0.2], [0.3, -0.2, 0.5]])
    mean = np.array([0.5, 0.0, -1.0])
    got = fid.frechet_distance(gaussian_features(mean, cov, 40, 2), gaussian_features(mean + 0.5, 9 * cov, 40, 3))
    # same shape, covariance scaled by a^2 = 9: 3 * 0.25 + (1 - 3)^2 * trace(cov)
    assert got == pytest.approx(0.75 + 4 * np.trace(cov), rel=1e-6)


def test_fid_of_fewer_than_two_images_is_an_error():
    with pytest.raises(ValueError, match='at least 2 images'):
        fid.frechet_distance(np.zeros((1, 4)), np.zeros((3, 4)))


def test_fid_accumulates_sr_and_distinct_gt_features_and_equals_the_distance_of_their_statistics():
    sr, gt = images(8, 0, brightness=30), images(4, 1)
    metric = fid.FID(feature_net=colour_statistics)
    for i, img in enumerate(sr):
        metric.update(img, gt[i % 4])  # two SR samples per GT image: each GT counted once
    assert len(metric.sr_features) == 8 and len(metric.gt_features) == 4

    def features(imgs):
        return np.stack([colour_statistics(fid._to_rgb_tensor(i)).numpy()[0] for i in imgs])

    assert metric.compute() == pytest.approx(fid.frechet_distance(features(sr), features(gt)), rel=1e-6)
    # the colour shift is what the stand-in sees: the mean term alone is about 3 * (30 / 255)^2
    assert metric.compute() > 3 * (25 / 255)**2


def test_fid_of_a_set_against_itself_is_zero_and_crop_border_crops():
    same = images(5, 2)
    metric = fid.FID(feature_net=colour_statistics)
    for img in same:
        metric.update(img, img)
    assert metric.compute() == pytest.approx(0.0, abs=1e-6)
    seen = []
    cropped = fid.FID(crop_border=2, feature_net=lambda x: seen.append(tuple(x.shape)) or colour_statistics(x))
    cropped.update(same[0], same[1])
    assert len(cropped.sr_features) == 1 and len(cropped.gt_features) == 1  # reading the features measures them
    assert seen == [(1, 3, 8, 6), (1, 3, 8, 6)]


def test_features_are_measured_in_batches_in_the_order_given_and_a_gt_seen_before_is_not_measured_again():
    sr, gt = images(7, 3), images(7, 4)
    calls = []
    metric = fid.FID(feature_net=lambda x: calls.append(len(x)) or colour_statistics(x), batch_size=3)
    for s, g in zip(sr, gt):
        metric.update(s, g)
    expected = np.stack([colour_statistics(fid._to_rgb_tensor(i)).numpy()[0] for i in sr])
    assert np.allclose(np.stack(metric.sr_features), expected)
    assert metric.owners == list(range(7)) and len(metric.gt_features) == 7
    again = fid.FID(feature_net=metric.feature_net, batch_size=3)
    calls.clear()
    for s, g in zip(sr[:2], gt[:2]):
        again.update(s, g)
    assert np.allclose(np.stack(again.gt_features), np.stack(metric.gt_features)[:2])
    assert len(again.sr_features) == 2 and sum(calls) == 2  # only the SR images: the GT features came from the cache


def test_frechet_distance_by_gram_equals_the_square_root_form_also_with_fewer_images_than_features():
    rng = np.random.default_rng(5)
    for n, m, d in [(50, 60, 8), (40, 90, 128)]:
        a, b = rng.standard_normal((n, d)), 1.3 * rng.standard_normal((m, d)) + 0.2
        assert fid.frechet_distance_by_gram(a, b) == pytest.approx(fid.frechet_distance(a, b), rel=1e-6)


def test_fid_without_gt_or_of_mismatched_shapes_is_an_error():
    metric = fid.FID(feature_net=colour_statistics)
    with pytest.raises(ValueError, match='needs the GT'):
        metric.update(images(1, 0)[0], None)
    with pytest.raises(ValueError, match=r'SR shape \(12, 10, 3\) differs from GT shape \(10, 12, 3\)'):
        metric.update(images(1, 0)[0], np.zeros((10, 12, 3), np.uint8))


def test_missing_inception_weights_is_an_error_naming_where_to_put_them(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv('TORCH_HOME', str(tmp_path / 'torch_home'))
    with pytest.raises(FileNotFoundError) as error:
        fid.FID()
    message = str(error.value)
    assert os.path.join(str(tmp_path), 'experiments', 'pretrained_models', fid.INCEPTION_FILE) in message
    assert os.path.join(str(tmp_path), 'torch_home', 'hub', 'checkpoints', fid.INCEPTION_FILE) in message


def test_inception_weights_are_found_in_basicsr_local_path_first(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv('TORCH_HOME', str(tmp_path / 'torch_home'))
    hub = tmp_path / 'torch_home' / 'hub' / 'checkpoints'
    hub.mkdir(parents=True)
    (hub / fid.INCEPTION_FILE).write_bytes(b'x')
    assert fid.inception_weights_path() == str(hub / fid.INCEPTION_FILE)
    local = tmp_path / 'experiments' / 'pretrained_models'
    local.mkdir(parents=True)
    (local / fid.INCEPTION_FILE).write_bytes(b'x')
    assert os.path.abspath(fid.inception_weights_path()) == str(local / fid.INCEPTION_FILE)
