"""Diversity score of NTIRE 2021/2022 "Learning the super-resolution space"."""
from typing import Union

import numpy as np
import torch

__all__ = ['diversity_score']


def diversity_score(maps: Union[np.ndarray, torch.Tensor]) -> float:
    """How much better the pixel-wise best of N SR samples is than the best single sample.

    ``diversity = (global_best - local_best) / global_best * 100`` where ``global_best`` is the lowest
    image-mean LPIPS over the samples and ``local_best`` the mean over pixels of the per-pixel minimum
    of the spatial LPIPS maps. Both come from the same maps, so the score lies in [0, 100]; it is 0
    for identical samples. When ``global_best`` is 0 (a sample equals the GT) nothing can be improved
    and the score is 0.

    Args:
        maps (ndarray | Tensor): Spatial LPIPS maps of the N samples against the GT, shape (N, H, W)
            or (N, 1, H, W).

    Returns:
        float: Diversity score in percent.
    """
    if isinstance(maps, torch.Tensor):
        maps = maps.detach().cpu().numpy()
    maps = np.asarray(maps, dtype=np.float64)
    if maps.ndim == 4 and maps.shape[1] == 1:
        maps = maps[:, 0]
    if maps.ndim != 3 or maps.shape[0] == 0:
        raise ValueError(f'diversity_score expects maps of shape (N, H, W) or (N, 1, H, W), got {maps.shape}.')
    global_best = maps.mean(axis=(1, 2)).min()
    local_best = maps.min(axis=0).mean()
    if global_best <= 0:
        return 0.0
    return float((global_best - local_best) / global_best * 100.)
