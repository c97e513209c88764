"""Small image sets and a stand-in feature network for the dataset-level metrics (FID, KID, the bootstrap)."""
import numpy as np
import torch


def colour_statistics(x):
    """A stand-in feature network: per-channel mean and standard deviation of the image (6 features)."""
    return torch.cat([x.mean((2, 3)), x.std((2, 3))], 1)


def images(n, seed, brightness=0):
    """``n`` random 12x10 uint8 images, ``brightness`` added (clipped), from ``seed``."""
    rng = np.random.default_rng(seed)
    return [np.clip(rng.integers(0, 200, (12, 10, 3)) + brightness, 0, 255).astype(np.uint8) for _ in range(n)]
