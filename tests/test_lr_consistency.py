"""MATLAB-bicubic downscaling in torch and the back-projection of SR images onto their LR images (issue 16 item 4)."""
import numpy as np
import pytest
import torch
from basicsr.utils.matlab_functions import imresize
from skimage import data

from srflow_plugin.metrics import calculate_lr_psnr
from srflow_plugin.utils.lr_consistency import back_project, downscale, resize_matrix


def _eight_bit(x):
    """N=1 tensor in [0, 1] -> HWC array on [0, 255], rounded as a saved PNG is."""
    return np.round(x[0].numpy().transpose(1, 2, 0) * 255.)


def _lr_psnr(sr, lr):
    return calculate_lr_psnr(_eight_bit(sr), None, lq=_eight_bit(lr))


def _photo(image, size=128):
    return torch.from_numpy(image[:size, :size].astype(np.float32).transpose(2, 0, 1) / 255.)[None]


def _rounded(x):
    return torch.round(x * 255.) / 255.


@pytest.mark.parametrize('scale,height,width', [(2, 10, 14), (3, 9, 12), (4, 36, 44), (8, 64, 48)])
def test_downscale_equals_basicsr_imresize(scale, height, width):
    images = torch.rand(2, 3, height, width, generator=torch.Generator().manual_seed(scale))
    expected = torch.stack([imresize(image, 1. / scale) for image in images])

    ours = downscale(images, scale)

    assert ours.shape == (2, 3, height // scale, width // scale)
    assert torch.allclose(ours, expected, atol=1e-6, rtol=0)


def test_resize_matrix_rows_sum_to_one():
    matrix = resize_matrix(32, 4)
    assert matrix.shape == (8, 32)
    assert torch.allclose(matrix.sum(1), torch.ones(8, dtype=torch.float64), atol=1e-12)


def test_one_iteration_without_clipping_lands_exactly_on_the_lr_and_projecting_again_changes_nothing():
    generator = torch.Generator().manual_seed(0)
    sr = 0.3 + 0.4 * torch.rand(1, 3, 48, 64, generator=generator)
    lr = downscale(0.3 + 0.4 * torch.rand(1, 3, 48, 64, generator=generator), 4)

    projected = back_project(sr, lr, 4, iterations=1)

    assert projected.min() > 0 and projected.max() < 1  # nothing was clipped
    assert (downscale(projected, 4) - lr).abs().max() < 1e-5
    assert (back_project(projected, lr, 4, iterations=1) - projected).abs().max() < 1e-5


@pytest.mark.parametrize('photo', ['astronaut', 'chelsea', 'coffee'])
def test_projection_brings_lr_psnr_of_a_bicubic_upscale_of_a_real_photo_above_50_db(photo):
    hr = _photo(getattr(data, photo)())
    lr = _rounded(downscale(hr, 4))
    sr = _rounded(imresize(lr[0], 4)[None].clamp(0, 1))  # a smooth SR image that is not LR-consistent

    projected = _rounded(back_project(sr, lr, 4, iterations=2))

    assert _lr_psnr(sr, lr) < 45
    assert _lr_psnr(projected, lr) >= 50
    assert 0 <= projected.min() and projected.max() <= 1


def test_projection_of_random_images_reaches_50_db_lr_psnr():
    generator = torch.Generator().manual_seed(1)
    lr = _rounded(downscale(torch.rand(1, 3, 64, 64, generator=generator), 4))
    sr = torch.rand(1, 3, 64, 64, generator=generator)  # unrelated to the LR: LR-PSNR about 21 dB

    projected = _rounded(back_project(sr, lr, 4, iterations=2))

    assert _lr_psnr(sr, lr) < 25
    assert _lr_psnr(projected, lr) >= 50


def test_more_iterations_bring_a_clipped_projection_closer_to_the_lr():
    hr = _photo(data.astronaut(), 64)
    lr = downscale(hr, 4)
    sr = torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(2))

    errors = [(downscale(back_project(sr, lr, 4, n), 4) - lr).pow(2).mean().item() for n in (1, 3, 10)]

    assert errors[0] > errors[1] > errors[2]


def test_zero_iterations_return_the_input_and_keep_dtype():
    sr = torch.rand(1, 3, 16, 16)
    lr = downscale(sr, 4)
    assert back_project(sr, lr, 4, iterations=0) is sr
    assert back_project(sr.double(), lr.double(), 4, iterations=1).dtype == torch.float64


def test_mismatched_shapes_and_bad_iterations_are_named():
    sr = torch.rand(1, 3, 16, 20)
    with pytest.raises(ValueError, match=r'LR shape \(1, 3, 4, 4\) does not match SR shape \(1, 3, 16, 20\)'):
        back_project(sr, torch.rand(1, 3, 4, 4), 4)
    with pytest.raises(ValueError, match=r'shape \(1, 3, 16, 20\) cannot be downscaled by 3'):
        downscale(sr, 3)
    with pytest.raises(ValueError, match='non-negative integer, got -1'):
        back_project(sr, downscale(sr, 4), 4, iterations=-1)
