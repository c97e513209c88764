"""KID (kernel Inception distance, Binkowski et al. 2018) from the same Inception features as FID.

KID is the squared maximum mean discrepancy between the SR and the GT feature sets with the cubic polynomial kernel
``k(x, y) = (x . y / D + 1) ** 3`` (D the feature dimension), estimated without bias: for sets X and Y of m features,

    MMD^2 = sum_{i != j} [k(x_i, x_j) + k(y_i, y_j)] / (m (m - 1)) - 2 sum_{i, j} k(x_i, y_j) / m^2

averaged over ``subsets`` random subsets of m = min(len(X), len(Y), subset_size) features of each set (drawn without
replacement), as torch-fidelity (``kid_subsets=100``, ``kid_subset_size=1000``) and clean-fid (``num_subsets=100``,
``max_subset_size=1000``) compute it. Unlike FID it has no bias that depends on the number of images, so small sets
can be compared (its estimate may be slightly negative when the two sets come from one distribution).
The kernel matrices are computed once, so subsets (and bootstrap resamples) only index into them.
"""
from typing import Callable, Optional, Tuple, Union

import numpy as np
import torch

from srflow_plugin.metrics.fid import InceptionFeatures

__all__ = ['KID', 'polynomial_kernel', 'kernel_distance', 'kernel_distance_of_kernels']


def polynomial_kernel(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """(x . y / D + 1) ** 3 for every row pair of x (n, D) and y (m, D): an (n, m) float64 array."""
    x, y = torch.as_tensor(np.asarray(x), dtype=torch.float64), torch.as_tensor(np.asarray(y), dtype=torch.float64)
    return ((x @ y.T) / x.shape[1] + 1).pow(3).numpy()


def kernel_distance_of_kernels(k_xx: np.ndarray,
                               k_yy: np.ndarray,
                               k_xy: np.ndarray,
                               subsets: int = 100,
                               subset_size: int = 1000,
                               seed: int = 0,
                               x_index: Optional[np.ndarray] = None,
                               y_index: Optional[np.ndarray] = None) -> Tuple[float, float]:
    """KID from precomputed kernel matrices (see :func:`kernel_distance`).

    Args:
        k_xx, k_yy, k_xy (ndarray): Kernels within X, within Y and between them.
        subsets (int), subset_size (int), seed (int): As :func:`kernel_distance`.
        x_index, y_index (ndarray | None): The members of X and Y to use (with repeats for a bootstrap resample);
            default all.

    Returns:
        tuple[float, float]: (mean, standard deviation) over the subsets.
    """
    x_index = np.arange(len(k_xx)) if x_index is None else np.asarray(x_index)
    y_index = np.arange(len(k_yy)) if y_index is None else np.asarray(y_index)
    m = min(len(x_index), len(y_index), int(subset_size))
    if m < 2:
        raise ValueError(f'KID needs the features of at least 2 images per set, got {len(x_index)} and {len(y_index)}')
    rng = np.random.default_rng(seed)
    values = []
    for _ in range(int(subsets)):
        x = x_index[rng.choice(len(x_index), m, replace=False)] if m < len(x_index) else x_index
        y = y_index[rng.choice(len(y_index), m, replace=False)] if m < len(y_index) else y_index
        within_x, within_y = k_xx[np.ix_(x, x)], k_yy[np.ix_(y, y)]
        off_diagonal = within_x.sum() - np.trace(within_x) + within_y.sum() - np.trace(within_y)
        values.append(off_diagonal / (m * (m - 1)) - 2 * k_xy[np.ix_(x, y)].sum() / m**2)
    return float(np.mean(values)), float(np.std(values))


def kernel_distance(features1: np.ndarray,
                    features2: np.ndarray,
                    subsets: int = 100,
                    subset_size: int = 1000,
                    seed: int = 0) -> Tuple[float, float]:
    """KID between two feature sets (rows): the unbiased polynomial-kernel MMD^2 averaged over subsets.

    Args:
        features1, features2 (ndarray): (n, D) and (m, D) features.
        subsets (int): Number of random subsets. Default: 100 (torch-fidelity, clean-fid).
        subset_size (int): Largest subset; the subsets have min(n, m, subset_size) members. Default: 1000.
        seed (int): Seed of the subset draws. Default: 0.

    Returns:
        tuple[float, float]: (KID, standard deviation over the subsets); the deviation is 0 when the subsets are
        the whole sets.
    """
    x, y = np.asarray(features1, dtype=np.float64), np.asarray(features2, dtype=np.float64)
    if x.ndim != 2 or y.ndim != 2 or x.shape[1] != y.shape[1]:
        raise ValueError(f'KID needs two feature sets of one dimension, got shapes {x.shape} and {y.shape}')
    return kernel_distance_of_kernels(polynomial_kernel(x, x), polynomial_kernel(y, y), polynomial_kernel(x, y),
                                      subsets, subset_size, seed)


class KID(InceptionFeatures):
    """KID between all SR images given to :meth:`update` and their (distinct) GT images.

    Args:
        crop_border (int): Pixels cropped from each edge before measuring. Default: 0.
        subsets (int), subset_size (int), seed (int): As :func:`kernel_distance`. Default: 100, 1000, 0.
        feature_net, device, batch_size: As :class:`~srflow_plugin.metrics.fid.InceptionFeatures`.
    """

    def __init__(self,
                 crop_border: int = 0,
                 subsets: int = 100,
                 subset_size: int = 1000,
                 seed: int = 0,
                 feature_net: Optional[Callable[[torch.Tensor], torch.Tensor]] = None,
                 device: Union[str, torch.device, None] = None,
                 batch_size: int = 16):
        super().__init__(crop_border, feature_net, device, batch_size)
        self.subsets, self.subset_size, self.seed = int(subsets), int(subset_size), int(seed)

    def compute(self) -> float:
        """The KID of everything added so far (the mean over the subsets)."""
        return kernel_distance(*self.arrays(), self.subsets, self.subset_size, self.seed)[0]
