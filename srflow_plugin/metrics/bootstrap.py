"""Bootstrap spreads of SR metrics: the test images resampled with replacement, every metric recomputed per resample.

The resamples depend only on the number of images and the seed, so two models measured on the same images get the
same resamples, and the spread of a difference between them is the spread of the paired per-resample differences
(:func:`paired_difference`). Per-image metrics (PSNR, LPIPS, ...) are averaged over the resampled images; FID and KID
are recomputed from the resampled feature sets (an image drawn twice brings its GT feature and all its SR samples'
features twice), from Gram matrices computed once (:func:`~srflow_plugin.metrics.fid.frechet_distance_from_gram`,
:func:`~srflow_plugin.metrics.kid.kernel_distance_of_kernels`).
"""
from typing import Dict, Optional, Sequence, Union

import numpy as np

from srflow_plugin.metrics.fid import InceptionFeatures, frechet_distance_from_gram
from srflow_plugin.metrics.kid import kernel_distance_of_kernels

__all__ = ['image_resamples', 'bootstrap_values', 'paired_difference']


def image_resamples(n_images: int, count: int, seed: int = 0) -> np.ndarray:
    """(count, n_images) indices of images drawn with replacement; the same for the same arguments."""
    return np.random.default_rng(seed).integers(0, n_images, (int(count), int(n_images)))


def bootstrap_values(per_image: Dict[str, Sequence[float]],
                     features: Optional[InceptionFeatures] = None,
                     count: int = 200,
                     seed: int = 0,
                     kid_subsets: int = 10,
                     kid_subset_size: int = 1000) -> Dict[str, np.ndarray]:
    """Every metric over ``count`` resamples of the images.

    Args:
        per_image (dict[str, Sequence[float]]): metric -> one value per image (all of one length n).
        features (InceptionFeatures | None): SR and GT features of the same n images, the GT images given in the
            same order (``owners`` says whose each SR feature is); adds 'fid' and 'kid'.
        count (int): Number of resamples. Default: 200.
        seed (int): Seed of the resamples. Default: 0.
        kid_subsets (int), kid_subset_size (int): KID's subsets per resample (see kid.kernel_distance).

    Returns:
        dict[str, ndarray]: metric -> (count,) values.
    """
    lengths = {len(values) for values in per_image.values()}
    if features is not None:
        sr, gt = features.arrays()
        lengths.add(len(gt))
    if len(lengths) != 1:
        raise ValueError(f'Bootstrap: the metrics and features cover different numbers of images: {sorted(lengths)}')
    n = lengths.pop()
    indices = image_resamples(n, count, seed)
    values = {key: np.asarray(v, dtype=np.float64)[indices].mean(1) for key, v in per_image.items()}
    if features is not None:
        owners = np.asarray(features.owners)
        samples_of = [np.flatnonzero(owners == i) for i in range(n)]
        g_xx, g_yy, g_xy = sr @ sr.T, gt @ gt.T, sr @ gt.T
        dim = sr.shape[1]
        k_xx, k_yy, k_xy = ((g / dim + 1)**3 for g in (g_xx, g_yy, g_xy))
        fid, kid = [], []
        for b, drawn in enumerate(indices):
            x_index = np.concatenate([samples_of[i] for i in drawn])
            fid.append(frechet_distance_from_gram(g_xx, g_yy, g_xy, x_index, drawn))
            kid.append(kernel_distance_of_kernels(k_xx, k_yy, k_xy, kid_subsets, kid_subset_size, seed + b,
                                                  x_index, drawn)[0])
        values['fid'], values['kid'] = np.array(fid), np.array(kid)
    return values


def paired_difference(value_a: float,
                      value_b: float,
                      resamples_a: np.ndarray,
                      resamples_b: np.ndarray,
                      level: float = 0.95) -> Dict[str, Union[float, bool]]:
    """A - B with the spread of the paired bootstrap differences.

    Args:
        value_a, value_b (float): The two models' values on all images.
        resamples_a, resamples_b (ndarray): Their values on the same resamples (:func:`bootstrap_values`).
        level (float): Coverage of the percentile interval. Default: 0.95.

    Returns:
        dict: difference, sd (standard deviation of the resampled differences), low, high (percentile interval of
        the resampled differences) and separated (True when the interval excludes 0).
    """
    differences = np.asarray(resamples_a) - np.asarray(resamples_b)
    low, high = np.quantile(differences, [(1 - level) / 2, (1 + level) / 2])
    return dict(difference=float(value_a - value_b), sd=float(differences.std(ddof=1)), low=float(low),
                high=float(high), separated=bool(low > 0 or high < 0))
