"""Latent tools (scripts/latent_tools.py, srflow_plugin.tools.latent): encode, transfer, sweep."""
import os
from os import path as osp

import cv2
import numpy as np
import pytest
import torch

from srflow_plugin.inference.grid import GAP, label_height, tile_origin
from srflow_plugin.inference.loading import load_srflow
from srflow_plugin.tools import latent as latent_tool
from srflow_plugin.tools import sample as sample_tool
from srflow_plugin.utils.image import to_tensor
from helpers.tiny import write_image, write_tiny_checkpoint

HR_H, HR_W = 48, 40


pytestmark = pytest.mark.usefixtures('single_thread')


@pytest.fixture(scope='module')
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp('latent')
    write_tiny_checkpoint(root / 'tiny.pth')
    write_image(root / 'a.png', HR_H, HR_W, seed=11)
    write_image(root / 'b.png', HR_H, HR_W, seed=12)
    write_image(root / 'lr.png', HR_H // 4, HR_W // 4, seed=13)
    return root


@pytest.fixture(scope='module')
def net(files):
    return load_srflow(str(files / 'tiny.pth'))


def _encoded(net, path):
    hr, lr = latent_tool.load_pair(str(path), None, net.scale)
    return to_tensor(hr), to_tensor(lr), latent_tool.encode_image(
        net, to_tensor(hr), to_tensor(lr))


def _read(path):
    img = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    assert img is not None, path
    return img


# ------------------------------------------------------------------------------------------------ encode
def test_encode_then_decode_reconstructs_the_hr_image_within_1e_4(net, files):
    _, _, result = _encoded(net, files / 'a.png')
    assert result['max_abs_error'] < 1e-4 and result['psnr'] > 80
    assert [tuple(z.shape) for z in result['latents']] == [(1, 6, 24, 20), (1, 96, 6, 5)]


def test_encode_cli_writes_latents_that_reload_to_the_same_decode(net, files, tmp_path):
    # on the CPU, as the network it is compared with (--device auto would take a GPU where there is one)
    result = latent_tool.main(['encode', '--hr', str(files / 'a.png'), '-c', str(files / 'tiny.pth'), '-o',
                               str(tmp_path), '--device', 'cpu'])
    assert sorted(os.listdir(tmp_path)) == ['a_encode.txt', 'a_latents.pt', 'a_lr.png', 'a_reconstruction.png']
    latents = latent_tool.load_latents(str(tmp_path / 'a_latents.pt'))
    lr = to_tensor(_read(tmp_path / 'a_lr.png'))
    with torch.no_grad():
        assert torch.equal(net.decode(lr, latents=latents), result['reconstruction'])
    report = (tmp_path / 'a_encode.txt').read_text()
    assert f'max_abs_error: {result["max_abs_error"]:.3e}' in report and 'psnr_db: ' in report
    assert np.abs(_read(tmp_path / 'a_reconstruction.png').astype(int) - _read(files / 'a.png')).max() <= 1


def test_encode_with_an_hr_that_is_not_scale_times_the_lr_names_both_files(files, tmp_path):
    with pytest.raises(ValueError, match=r'a\.png \(40x48\) is not 4x its LR .*b\.png'):
        latent_tool.main(['encode', '--hr', str(files / 'a.png'), '--lr', str(files / 'b.png'), '-c',
                          str(files / 'tiny.pth'), '-o', str(tmp_path)])


# ------------------------------------------------------------------------------------------------ transfer
def test_box_cells_round_hr_coordinates_to_the_nearest_cell_boundary():
    assert latent_tool.box_cells((8, 16, 16, 8), 8) == (2, 3, 1, 3)
    assert latent_tool.box_cells((3, 5, 10, 2), 2) == (3, 4, 2, 7)


def test_transfer_with_an_empty_box_is_the_identity_on_the_target(net, files):
    _, _, source = _encoded(net, files / 'a.png')
    _, target_lq, target = _encoded(net, files / 'b.png')
    after = latent_tool.content_transfer(net, source['latents'], target['latents'], target_lq, (8, 8, 0, 16))
    assert torch.equal(after, target['reconstruction'])


def test_transfer_of_the_full_box_without_normalisation_and_the_source_lr_reproduces_the_source(net, files):
    _, source_lq, source = _encoded(net, files / 'a.png')
    _, _, target = _encoded(net, files / 'b.png')
    after = latent_tool.content_transfer(net, source['latents'], target['latents'], source_lq, (0, 0, HR_W, HR_H),
                                         normalize=False)
    assert (after - source['reconstruction']).abs().max().item() < 1e-5


def test_normalised_transfer_gives_the_region_the_target_statistics_and_keeps_the_rest(net, files):
    _, _, source = _encoded(net, files / 'a.png')
    _, _, target = _encoded(net, files / 'b.png')
    box, offset = (8, 16, 16, 16), (8, -8)  # target region: x 16..32, y 8..24
    moved = latent_tool.transfer_latents(source['latents'], target['latents'], box, [2, 8], offset)
    top, region = moved[1], np.s_[..., 1:3, 2:4]  # stride 8: cells y 1:3, x 2:4
    assert torch.allclose(top[region].mean((-2, -1)), target['latents'][1][region].mean((-2, -1)), atol=1e-5)
    assert torch.allclose(top[region].std((-2, -1)), target['latents'][1][region].std((-2, -1)), atol=1e-4)
    outside = torch.ones_like(top, dtype=torch.bool)
    outside[region] = False
    assert torch.equal(top[outside], target['latents'][1][outside])


def test_a_box_moved_outside_the_target_is_an_error_naming_box_and_offset(net, files):
    _, _, source = _encoded(net, files / 'a.png')
    with pytest.raises(ValueError, match=r'box \(8, 16, 16, 16\) with offset \(32, 0\)'):
        latent_tool.transfer_latents(source['latents'], source['latents'], (8, 16, 16, 16), [2, 8], (32, 0))


def test_style_transfer_decodes_the_source_latents_with_the_target_lr(net, files):
    _, _, source = _encoded(net, files / 'a.png')
    _, target_lq, _ = _encoded(net, files / 'b.png')
    after = latent_tool.style_transfer(net, source['latents'], target_lq)
    with torch.no_grad():
        assert torch.equal(after, net.decode(target_lq, latents=source['latents']))


def test_transfer_cli_writes_before_after_difference_and_an_overview(files, tmp_path):
    paths = latent_tool.main(['transfer', '--source', str(files / 'a.png'), '--target', str(files / 'b.png'),
                              '--box', '8', '16', '16', '16', '--offset', '8', '-8', '-c', str(files / 'tiny.pth'),
                              '-o', str(tmp_path)])
    for key in ('before', 'after', 'diff'):
        assert _read(paths[key]).shape == (HR_H, HR_W, 3)
    overview = _read(paths['transfer'])
    assert overview.shape == (GAP + label_height(HR_W) + HR_H + GAP, GAP + 4 * (HR_W + GAP), 3)
    y, x = tile_origin(0, 2, HR_H, HR_W)
    assert np.array_equal(overview[y:y + HR_H, x:x + HR_W], _read(paths['after']))
    before, after, diff = (_read(paths[k]).astype(int) for k in ('before', 'after', 'diff'))
    assert np.array_equal(diff, np.clip(np.abs(after - before) * latent_tool.DIFF_GAIN, 0, 255))
    inside = np.zeros(diff.shape[:2], bool)
    inside[8:24, 16:32] = True  # the target box
    assert diff[inside].mean() > 2 * diff[~inside].mean()  # the flow's receptive field spreads it a little


# ------------------------------------------------------------------------------------------------ sweep
def test_sweep_writes_one_tile_per_temperature(files, tmp_path):
    path = latent_tool.main(['sweep', '-i', str(files / 'lr.png'), '-c', str(files / 'tiny.pth'), '-o',
                             str(tmp_path), '--temperatures', '0', '0.4', '0.8', '1.2'])
    assert osp.basename(path) == 'lr_sweep.png'
    assert _read(path).shape == (GAP + label_height(HR_W) + HR_H + GAP, GAP + 4 * (HR_W + GAP), 3)


def test_sweep_tiles_are_the_samples_of_the_sampling_cli_with_the_same_seed(files, tmp_path):
    path = latent_tool.main(['sweep', '-i', str(files / 'lr.png'), '-c', str(files / 'tiny.pth'), '-o',
                             str(tmp_path), '--seed', '5'])
    sample_tool.main(['-i', str(files / 'lr.png'), '-c', str(files / 'tiny.pth'), '-o', str(tmp_path / 's'),
                      '--temperatures', '0.8', '--num_samples', '1', '--seed', '5'])
    y, x = tile_origin(0, latent_tool.SWEEP_TEMPERATURES.index(0.8), HR_H, HR_W)
    assert np.array_equal(_read(path)[y:y + HR_H, x:x + HR_W], _read(tmp_path / 's' / 'lr_t0.8_s0.png'))
