"""LR consistency: MATLAB-bicubic downscaling as two small matrices, and the back-projection of SR images onto the HR
images whose downscale equals their LR input.

The downscale is ``basicsr.utils.matlab_functions.imresize(img, 1 / scale)`` (bicubic, anti-aliased, symmetric
padding at the borders), the kernel that makes the LR images of the data (``srflow-prepare-data``) and that LR-PSNR
measures with. It is separable and linear, ``D(x) = A_h x A_w^T`` with an (h, H) and a (w, W) matrix built from
BasicSR's own weights and indices, so it runs as two matrix products on any device, for a whole batch at once.

Back-projection: the HR images consistent with an LR image ``y`` form the affine set ``{x : D(x) = y}``; its closest
point to ``x`` is ``x + D^+(y - D(x))`` with the pseudo-inverse ``D^+(r) = P_h r P_w^T``, ``P = A^T (A A^T)^-1`` (also
separable). One step without clipping lands exactly on the set. Pixels must stay in [0, 1], so each iteration projects
and then clips (alternating projections onto the set and the box); more iterations bring the clipped image closer to
the set.
"""
import functools
from typing import Dict, Hashable, Tuple

import numpy as np
import torch
from basicsr.utils.matlab_functions import calculate_weights_indices

from srflow_plugin.metrics.lr_psnr import calculate_lr_psnr
from srflow_plugin.utils.image import to_image, to_tensor

__all__ = ['resize_matrix', 'downscale', 'back_project', 'back_project_image', 'project_samples']


@functools.lru_cache(maxsize=32)
def _matrices(in_length, scale):
    """(A, P) in float64 on the CPU: the (in_length / scale, in_length) downscaling matrix and its pseudo-inverse."""
    out_length = in_length // scale
    weights, indices, sym_start, _ = calculate_weights_indices(in_length, out_length, 1. / scale, 'cubic', 4, True)
    weights = weights.double()
    matrix = torch.zeros(out_length, in_length, dtype=torch.float64)
    # BasicSR reads a window of consecutive pixels of the symmetrically padded line, starting at indices[i, 0]; a
    # padded position maps back to the pixel it mirrors (edge pixel repeated, as in MATLAB's 'symmetric'; lines
    # shorter than the kernel reflect again, where BasicSR's own loop fails).
    for k in range(weights.shape[1]):
        source = (indices[:, k].long() - sym_start) % (2 * in_length)
        source = torch.where(source >= in_length, 2 * in_length - 1 - source, source)
        matrix.index_put_((torch.arange(out_length), source), weights[:, k], accumulate=True)
    pseudo_inverse = matrix.T @ torch.linalg.inv(matrix @ matrix.T)
    return matrix, pseudo_inverse


def resize_matrix(in_length: int, scale: int) -> torch.Tensor:
    """The (in_length / scale, in_length) float64 matrix of MATLAB's bicubic downscaling of one image line.

    Args:
        in_length (int): Line length; a multiple of ``scale``.
        scale (int): Integer downscaling factor.
    """
    return _matrices(int(in_length), int(scale))[0].clone()


def _check_sizes(hr_shape, scale, lr_shape=None):
    """Integer scale; HR height and width multiples of it; the LR (if given) exactly HR / scale; else a ValueError
    naming the shapes."""
    if int(scale) != scale or scale < 1:
        raise ValueError(f'Scale {scale} is not a positive integer.')
    if len(hr_shape) != 4:
        raise ValueError(f'Expected an N,C,H,W tensor, got shape {tuple(hr_shape)}.')
    height, width = hr_shape[-2:]
    if height % scale or width % scale:
        raise ValueError(f'Image of shape {tuple(hr_shape)} cannot be downscaled by {scale}: '
                         'its size is not a multiple.')
    expected = (*hr_shape[:2], height // scale, width // scale)
    if lr_shape is not None and tuple(lr_shape) != expected:
        raise ValueError(f'LR shape {tuple(lr_shape)} does not match SR shape {tuple(hr_shape)} at scale {scale} '
                         f'(expected {expected}).')


def _on(x, in_length, scale, which):
    """Matrix ``which`` (0: A, 1: P) for lines of ``in_length``, in x's float type and device."""
    dtype = x.dtype if x.dtype in (torch.float32, torch.float64) else torch.float32
    return _matrices(int(in_length), int(scale))[which].to(device=x.device, dtype=dtype)


def _float(x):
    return x if x.dtype in (torch.float32, torch.float64) else x.float()


@torch.no_grad()
def downscale(img: torch.Tensor, scale: int) -> torch.Tensor:
    """MATLAB-bicubic downscale of a batch by an integer factor (``imresize(img, 1 / scale)`` of BasicSR), unrounded.

    Args:
        img (Tensor): N,C,H,W, any device; H and W multiples of ``scale``.
        scale (int): Integer downscaling factor.

    Returns:
        Tensor: N,C,H/scale,W/scale in float32 (float64 for a float64 input), on img's device.
    """
    _check_sizes(img.shape, scale)
    x = _float(img)
    rows = _on(x, x.shape[-2], scale, 0)
    cols = _on(x, x.shape[-1], scale, 0)
    with torch.autocast(x.device.type, enabled=False):  # full precision also inside a mixed-precision region
        return rows @ x @ cols.T


@torch.no_grad()
def back_project(sr: torch.Tensor, lr: torch.Tensor, scale: int, iterations: int = 1) -> torch.Tensor:
    """SR images moved onto the HR images whose MATLAB-bicubic downscale is their LR image, staying in [0, 1].

    The SR images are first clipped to [0, 1] (as saving them would); then each iteration adds the pseudo-inverse of
    the downscale applied to the LR residual (the smallest change that makes the downscale equal ``lr``) and clips to
    [0, 1]. Unclipped, one iteration is exact; clipping moves the image off
    the set again by little, and further iterations reduce that.

    Args:
        sr (Tensor): N,C,H,W SR images in [0, 1], any device.
        lr (Tensor): N,C,H/scale,W/scale LR images in [0, 1], same device.
        scale (int): Integer scale factor.
        iterations (int): Number of project-and-clip steps; 0 returns ``sr`` unchanged. Default: 1.

    Returns:
        Tensor: The projected images, of sr's shape, dtype and device.
    """
    _check_sizes(sr.shape, scale, lr.shape)
    if int(iterations) != iterations or iterations < 0:
        raise ValueError(f'Back-projection iterations must be a non-negative integer, got {iterations}.')
    if iterations == 0:
        return sr
    x = _float(sr).clamp(0, 1)  # starts from the image that would be saved
    target = _float(lr).to(x.dtype)
    rows, cols = _on(x, x.shape[-2], scale, 0), _on(x, x.shape[-1], scale, 0)
    rows_inv, cols_inv = _on(x, x.shape[-2], scale, 1), _on(x, x.shape[-1], scale, 1)
    with torch.autocast(x.device.type, enabled=False):  # full precision also inside a mixed-precision region
        for _ in range(int(iterations)):
            residual = target - rows @ x @ cols.T
            x += rows_inv @ residual @ cols_inv.T
            x.clamp_(0, 1)
    return x.to(sr.dtype)


def back_project_image(sr: np.ndarray, lr: np.ndarray, iterations: int) -> np.ndarray:
    """:func:`back_project` of one 8-bit image (HWC uint8 BGR, as read and written by srflow_plugin.utils.image),
    returned as one: the scale is SR size / LR size."""
    scale = sr.shape[0] // max(lr.shape[0], 1)
    return to_image(back_project(to_tensor(sr), to_tensor(lr), scale, iterations))


def project_samples(samples: Dict[Hashable, torch.Tensor], lq: torch.Tensor, scale: int,
                    iterations: int) -> Tuple[Dict[Hashable, torch.Tensor], float, float]:
    """Every sample of :func:`srflow_plugin.inference.sampling.sample_image` projected onto its LR image, with the mean
    LR-PSNR (SRFlow's definition, 8-bit images) before and after.

    Args:
        samples (dict[key, Tensor]): [1, C, H, W] SR images (CPU) by (temperature, sample).
        lq (Tensor): Their LR image [1, C, H / scale, W / scale].
        scale (int): Scale factor.
        iterations (int): Back-projection steps.

    Returns:
        tuple: (projected samples, same keys; LR-PSNR before; LR-PSNR after), the LR-PSNRs averaged over the
        samples (``inf`` where a sample is exactly consistent).
    """
    lq = lq.cpu()
    lq_img = to_image(lq)
    projected = {key: back_project(sr.nan_to_num(), lq, scale, iterations) for key, sr in samples.items()}
    before = [calculate_lr_psnr(to_image(sr), None, lq=lq_img) for sr in samples.values()]
    after = [calculate_lr_psnr(to_image(sr), None, lq=lq_img) for sr in projected.values()]
    return projected, sum(before) / len(before), sum(after) / len(after)
