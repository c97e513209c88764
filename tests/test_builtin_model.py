"""The built-in model shipped in the package (srflow_plugin/pretrained, docs/model-card.md): it loads without an
option file, is finite, beats bicubic on a held-out photo, and the tools use it when no checkpoint is given."""
import glob
import os
from os import path as osp

import cv2
import numpy as np
import pytest
import torch
from basicsr.metrics import calculate_psnr

from srflow_plugin.inference.loading import load_srflow
from srflow_plugin.inference.sampling import mode_image
from srflow_plugin.metrics import bicubic_downscale, bicubic_upscale_matlab, calculate_lr_psnr
from srflow_plugin.pretrained import BUILTIN_X4, builtin_checkpoint, pack_checkpoint, resolve_checkpoint
from srflow_plugin.tools import latent, sample
from srflow_plugin.utils.checkpoint import save_srflow
from srflow_plugin.utils.image import read_image, to_image, to_tensor

# a 128 x 128 crop of a held-out photo of scripts/fetch_photos.py (never trained on): CC-BY-4.0, see tests/data/README
HELD_OUT = osp.join(osp.dirname(__file__), 'data', 'builtin_heldout_gt.png')


@pytest.fixture(scope='module')
def builtin():
    return load_srflow(builtin_checkpoint())


@pytest.fixture(scope='module')
def held_out():
    gt = read_image(HELD_OUT)
    return gt, bicubic_downscale(gt, 4)


def test_the_shipped_model_is_package_data_of_at_most_10_mb_with_its_network_options():
    assert builtin_checkpoint() == BUILTIN_X4
    assert osp.dirname(BUILTIN_X4).endswith(osp.join('srflow_plugin', 'pretrained'))
    assert os.path.getsize(BUILTIN_X4) <= 10 * 1000 * 1000
    checkpoint = torch.load(BUILTIN_X4, map_location='cpu', weights_only=True)
    assert checkpoint['network_g']['type'] == 'SRFlowNet' and checkpoint['network_g']['scale'] == 4


def test_the_shipped_model_loads_without_an_option_file_and_all_its_weights_are_finite(builtin):
    assert builtin.scale == 4 and not builtin.training
    assert all(torch.isfinite(v).all() for v in builtin.state_dict().values() if v.is_floating_point())


@torch.no_grad()
def test_the_shipped_model_beats_bicubic_on_a_held_out_photo(builtin, held_out):
    gt, lq = held_out
    sr = to_image(mode_image(builtin, to_tensor(lq)))
    psnr_flow = calculate_psnr(sr, gt, crop_border=4)
    psnr_bicubic = calculate_psnr(bicubic_upscale_matlab(lq, 4), gt, crop_border=4)
    print(f'held-out crop, tau 0: SRFlow {psnr_flow:.2f} dB, bicubic {psnr_bicubic:.2f} dB, LR-PSNR '
          f'{calculate_lr_psnr(sr, gt, lq=lq):.2f} dB')
    assert np.isfinite(psnr_flow) and psnr_flow > psnr_bicubic + 0.3


def test_bicubic_upscale_matlab_keeps_a_flat_image_flat_and_is_the_inverse_size_of_the_downscale():
    flat = np.full((6, 5, 3), 77, np.uint8)
    assert (bicubic_upscale_matlab(flat, 4) == 77).all() and bicubic_upscale_matlab(flat, 4).shape == (24, 20, 3)
    img = (np.random.default_rng(0).random((32, 32, 3)) * 255).astype(np.uint8)
    assert bicubic_downscale(bicubic_upscale_matlab(img, 4), 4).shape == img.shape


def test_srflow_sample_without_a_checkpoint_uses_the_builtin_model_and_says_so_in_one_line(held_out, tmp_path,
                                                                                           capsys):
    lr_path = tmp_path / 'photo.png'
    cv2.imwrite(str(lr_path), held_out[1])
    written = sample.main(['-i', str(lr_path), '-o', str(tmp_path / 'out'), '--temperatures', '0.8',
                           '--num_samples', '1'])
    lines = [line for line in capsys.readouterr().out.splitlines() if 'built-in' in line]
    assert lines == [f'srflow-sample: no -c given, using the built-in SRFlow x4 model ({BUILTIN_X4}; see '
                     'docs/model-card.md)',
                     'srflow-sample: safe sampling is on for the built-in model (--no-safe_sampling: samples as drawn)']
    assert written == [str(tmp_path / 'out' / 'photo_t0.8_s0.png')]
    assert read_image(written[0]).shape == (128, 128, 3)


def test_safe_sampling_is_on_by_default_for_the_builtin_model_only(held_out, tmp_path, capsys):
    lr_path = tmp_path / 'photo.png'
    cv2.imwrite(str(lr_path), held_out[1])
    common = ['-i', str(lr_path), '--temperatures', '0.8', '--num_samples', '1']
    sample.main(common + ['-o', str(tmp_path / 'default')])
    assert any(line.startswith('safe sampling') for line in capsys.readouterr().out.splitlines())
    sample.main(common + ['-o', str(tmp_path / 'off'), '--no-safe_sampling'])
    assert not any(line.startswith('safe sampling') for line in capsys.readouterr().out.splitlines())
    sample.main(common + ['-o', str(tmp_path / 'own'), '-c', BUILTIN_X4])  # a checkpoint given: as drawn
    out = capsys.readouterr().out
    assert 'built-in' not in out and not any(line.startswith('safe sampling') for line in out.splitlines())


def test_srflow_latent_without_a_checkpoint_uses_the_builtin_model(held_out, tmp_path, capsys):
    lr_path = tmp_path / 'photo.png'
    cv2.imwrite(str(lr_path), held_out[1])
    out = latent.main(['sweep', '-i', str(lr_path), '-o', str(tmp_path / 'out'), '--temperatures', '0', '0.8'])
    assert 'using the built-in SRFlow x4 model' in capsys.readouterr().out
    assert osp.isfile(out) and glob.glob(str(tmp_path / 'out' / '*_sweep.png')) == [out]


def test_an_option_file_without_its_checkpoint_is_refused_before_anything_is_loaded():
    with pytest.raises(ValueError, match=r'--opt train\.yml describes a checkpoint: give that checkpoint with -c'):
        resolve_checkpoint(None, 'train.yml', 'srflow-sample')
    assert resolve_checkpoint('mine.pth', 'train.yml') == 'mine.pth'


def test_packing_refuses_non_finite_weights_and_writes_nothing(builtin, tmp_path):
    import yaml
    config = torch.load(BUILTIN_X4, map_location='cpu', weights_only=True)['network_g']
    opt = tmp_path / 'train.yml'
    opt.write_text(yaml.safe_dump({'network_g': config}))
    save_srflow(builtin, str(tmp_path / 'good.pth'), config)
    assert load_srflow(pack_checkpoint(str(tmp_path / 'good.pth'), str(opt), str(tmp_path / 'packed.pth')))
    broken = torch.load(tmp_path / 'good.pth', map_location='cpu', weights_only=True)
    name = next(k for k, v in broken['params'].items() if v.is_floating_point())
    broken['params'][name] = torch.full_like(broken['params'][name], float('nan'))
    torch.save(broken, tmp_path / 'broken.pth')
    with pytest.raises(ValueError, match=f'broken.pth .*parameter {name} holds .* non-finite'):
        pack_checkpoint(str(tmp_path / 'broken.pth'), str(opt), str(tmp_path / 'never.pth'))
    assert not osp.exists(tmp_path / 'never.pth')
