"""MATLAB-bicubic downscaling in torch and the back-projection of SR images onto their LR images, and the
``lr_consistency`` option of srflow-measure, srflow-sample and validation."""
import cv2
import numpy as np
import pytest
import torch
from basicsr.utils.matlab_functions import imresize
from skimage import data

from srflow_plugin.inference.lr_consistency import back_project, downscale, resize_matrix
from srflow_plugin.metrics import calculate_lr_psnr


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


# --- the option in srflow-measure, srflow-sample and validation ---------------------------------------------------

def _photo_pairs(folder, names=('astronaut', 'chelsea'), size=64):
    """GT crops of scikit-image photos, their MATLAB-bicubic LR x4 (8 bits) and an OpenCV-bicubic upscale of the LR
    (a plausible SR image that is not LR-consistent), as folders gt/, lr/, sr/ of 8-bit PNGs."""
    from srflow_plugin.metrics import bicubic_downscale
    from srflow_plugin.utils.image import write_image
    for name in names:
        gt = np.ascontiguousarray(getattr(data, name)()[:size, :size, ::-1])
        lr = bicubic_downscale(gt, 4)
        write_image(gt, str(folder / 'gt' / f'{name}.png'))
        write_image(lr, str(folder / 'lr' / f'{name}.png'))
        write_image(cv2.resize(lr, (size, size), interpolation=cv2.INTER_CUBIC), str(folder / 'sr' / f'{name}.png'))
    return folder


@pytest.mark.usefixtures('lpips_hub')
def test_measure_reports_the_metrics_with_and_without_projection(tmp_path):
    from srflow_plugin.tools import measure
    root = _photo_pairs(tmp_path)
    rows = measure.main(['--sr', str(root / 'sr'), '--gt', str(root / 'gt'), '--lr', str(root / 'lr'),
                         '--lr_consistency', '2', '--crop_border', '4'])
    mean = rows[-1]
    assert mean['lr_psnr'] < 45 <= 50 <= mean['lr_psnr_projected']
    assert all(f'{key}_projected' in mean for key in ('psnr', 'ssim', 'lpips'))
    table = open(root / 'sr' / 'metrics.md').read()
    assert 'PSNR (projected)' in table and 'LPIPS (projected)' in table


def test_measure_without_lr_cannot_project(tmp_path):
    from srflow_plugin.tools import measure
    with pytest.raises(SystemExit):
        measure.parse_args(['--sr', str(tmp_path), '--gt', str(tmp_path), '--scale', '4', '--lr_consistency', '1'])


def test_srflow_sample_writes_projected_samples_and_prints_the_lr_psnr_before_and_after(tmp_path, capsys):
    from srflow_plugin.metrics import bicubic_downscale
    from srflow_plugin.tools import sample as sample_tool
    from srflow_plugin.utils.image import read_image, write_image
    from helpers.tiny import write_tiny_checkpoint
    write_tiny_checkpoint(tmp_path / 'tiny.pth')
    lr = bicubic_downscale(np.ascontiguousarray(data.coffee()[100:164, 200:264, ::-1]), 4)
    write_image(lr, str(tmp_path / 'in' / 'coffee.png'))
    written = sample_tool.main(['-i', str(tmp_path / 'in'), '-c', str(tmp_path / 'tiny.pth'), '-o',
                                str(tmp_path / 'out'), '--temperatures', '0', '0.8', '--num_samples', '2',
                                '--lr_consistency', '10'])  # an untrained network: far from its LR
    assert len(written) == 3
    for path in written:
        assert calculate_lr_psnr(read_image(path), None, lq=lr) >= 50
    printed = capsys.readouterr()
    assert 'coffee: LR-PSNR' in printed.out + printed.err


def test_validation_reports_projected_metrics_under_their_own_keys(tmp_path, single_thread):
    from srflow_plugin.metrics import bicubic_downscale
    from srflow_plugin.models.srflow_model import SRFlowModel
    from srflow_plugin.utils.image import to_tensor
    from helpers.tiny import TINY, write_tiny_checkpoint
    from helpers.train import make_opt
    write_tiny_checkpoint(tmp_path / 'tiny.pth')
    gt = np.ascontiguousarray(data.chelsea()[100:132, 200:232, ::-1])
    lr = bicubic_downscale(gt, 4)

    class _OnePair(torch.utils.data.Dataset):
        opt = {'name': 'photo'}

        def __len__(self):
            return 1

        def __getitem__(self, index):
            return {'lq': to_tensor(lr)[0], 'gt': to_tensor(gt)[0],
                    'lq_path': 'chelsea.png', 'gt_path': 'chelsea.png'}

    opt = make_opt(tmp_path, is_train=False, network_g={'type': 'SRFlowNet', **TINY},
                   path={'pretrain_network_g': str(tmp_path / 'tiny.pth')},
                   val={'heats': [0.0, 0.8], 'n_sample': 1, 'lr_consistency': 20})  # untrained: far off
    model = SRFlowModel(opt)
    model.validation(torch.utils.data.DataLoader(_OnePair()), 'unit', None, save_img=False)
    results = model.metric_results
    for temperature in ('t0', 't0.8'):
        assert results[f'lr_psnr_projected_{temperature}'] >= 50 > results[f'lr_psnr_{temperature}']
        assert f'psnr_projected_{temperature}' in results and f'psnr_{temperature}' in results
