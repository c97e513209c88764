"""LR-PSNR: how well a super-resolved image is consistent with its low-resolution input."""
from typing import Optional

import numpy as np
from basicsr.metrics.psnr_ssim import calculate_psnr
from basicsr.utils.matlab_functions import imresize
from basicsr.utils.registry import METRIC_REGISTRY

from srflow_plugin.utils import register

__all__ = ['calculate_lr_psnr', 'bicubic_downscale', 'bicubic_upscale_matlab']


def bicubic_downscale(img: np.ndarray, scale: int) -> np.ndarray:
    """Downscale an 8-bit image by an integer factor with MATLAB's bicubic ``imresize``.

    The resize runs in float on [0, 1] (basicsr.utils.matlab_functions.imresize, anti-aliased); the
    result is then rounded back to 8 bits, as MATLAB's ``imresize`` does for a uint8 image. Rounding
    matters: an LR image that is itself the bicubic downscale of the SR output is then recovered exactly.

    Args:
        img (ndarray): HWC (or HW) image, uint8 or float with range [0, 255].
        scale (int): Integer downscaling factor; height and width must be multiples of it.

    Returns:
        ndarray: uint8 image of size (H / scale, W / scale).
    """
    h, w = img.shape[:2]
    if h % scale or w % scale:
        raise ValueError(f'Image of shape {img.shape} cannot be downscaled by {scale}: its size is not a multiple.')
    small = imresize(img.astype(np.float32) / 255., 1. / scale)
    return np.clip(np.round(small * 255.), 0, 255).astype(np.uint8)


def bicubic_upscale_matlab(img: np.ndarray, scale: int) -> np.ndarray:
    """Upscale an 8-bit image by an integer factor with MATLAB's bicubic ``imresize``: the baseline that a
    trained SR model has to beat (the LR images are made by the same kernel, :func:`bicubic_downscale`).

    Args:
        img (ndarray): HWC (or HW) uint8 image.
        scale (int): Integer upscaling factor.

    Returns:
        ndarray: uint8 image of size (H * scale, W * scale).
    """
    big = imresize(img.astype(np.float32) / 255., scale)
    return np.clip(np.round(big * 255.), 0, 255).astype(np.uint8)


def _integer_scale(sr_shape, lq_shape):
    """Scale factor s with sr_shape = s * lq_shape (height and width), or a ValueError naming both shapes."""
    sh, sw = sr_shape[:2]
    lh, lw = lq_shape[:2]
    if sr_shape[2:] != lq_shape[2:] or lh == 0 or lw == 0 or sh % lh or sw % lw or sh // lh != sw // lw:
        raise ValueError(f'SR shape {tuple(sr_shape)} is not an integer multiple of LR shape {tuple(lq_shape)}.')
    return sh // lh


@register(METRIC_REGISTRY)
def calculate_lr_psnr(img: np.ndarray,
                      img2: Optional[np.ndarray],
                      lq: Optional[np.ndarray] = None,
                      crop_border: int = 0,
                      against: str = 'lq',
                      test_y_channel: bool = False,
                      scale: Optional[int] = None,
                      input_order: str = 'HWC',
                      **kwargs) -> float:
    """LR-PSNR: PSNR between a low-resolution reference and the bicubic downscale of the SR output.

    Two definitions are in use:

    - ``against='lq'`` (SRFlow paper): PSNR(lq, downscale(SR)), with lq the LR input of the network.
    - ``against='gt'`` (NTIRE 2021/2022 "Learning the SR space"): PSNR(downscale(GT), downscale(SR)).

    downscale is MATLAB bicubic by s = SR size / LR size (see ``bicubic_downscale``: float on [0, 1],
    result rounded to 8 bits). Like BasicSR's ``calculate_psnr``, which this uses, the value is
    ``float('inf')`` when the two LR images are identical.

    Args:
        img (ndarray): SR image, HWC BGR, range [0, 255].
        img2 (ndarray | None): GT image of the same shape as ``img``; only used with ``against='gt'``.
        lq (ndarray | None): LR input, HWC BGR, range [0, 255]; required with ``against='lq'``.
        crop_border (int): Pixels cropped from each edge of the LR-size images before comparing.
            Default: 0.
        against (str): 'lq' or 'gt', see above. Default: 'lq'.
        test_y_channel (bool): Compare the Y channel of YCbCr only. Default: False.
        scale (int | None): Scale factor. Inferred from ``img`` and ``lq`` when lq is given (and must
            then agree); required with ``against='gt'`` when lq is not given.
        input_order (str): Only 'HWC' is supported (BasicSR passes HWC numpy images).

    Returns:
        float: LR-PSNR in dB.
    """
    if input_order != 'HWC':
        raise ValueError(f"calculate_lr_psnr supports input_order='HWC' only, got '{input_order}'.")
    if against not in ('lq', 'gt'):
        raise ValueError(f"Unknown against='{against}': use 'lq' (LR input) or 'gt' (downscaled GT, NTIRE).")
    if lq is not None:
        inferred = _integer_scale(img.shape, lq.shape)
        if scale is not None and int(scale) != inferred:
            raise ValueError(f'scale={scale} disagrees with SR shape {img.shape} / LR shape {lq.shape}.')
        scale = inferred
    elif against == 'lq':
        raise ValueError("calculate_lr_psnr with against='lq' needs the LR input: pass lq=... "
                         "(or use against='gt' with scale=...).")
    elif scale is None:
        raise ValueError("calculate_lr_psnr with against='gt' and no lq needs scale=...")
    scale = int(scale)

    sr_small = bicubic_downscale(img, scale)
    if against == 'lq':
        reference = lq
    else:
        if img2 is None or img2.shape != img.shape:
            raise ValueError(f'GT shape {None if img2 is None else img2.shape} differs from SR shape {img.shape}.')
        reference = bicubic_downscale(img2, scale)
    return calculate_psnr(sr_small, reference, crop_border=crop_border, test_y_channel=test_y_channel)
