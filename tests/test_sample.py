"""Sampling CLI (srflow-sample, srflow_plugin.tools.sample over srflow_plugin.inference.sampling) and checkpoint
loading (inference.loading), on the tiny network of ``helpers.tiny``."""
import os
import subprocess
import sys
from os import path as osp

import cv2
import numpy as np
import pytest
import torch
import yaml

from srflow_plugin.inference import sampling
from srflow_plugin.inference.grid import label_height, tile_origin
from srflow_plugin.inference.loading import load_srflow
from srflow_plugin.tools import sample as sample_tool
from srflow_plugin.utils.sampling import image_name, output_name
from helpers.tiny import TINY, tiny_net, write_image, write_tiny_checkpoint
from helpers.train import subprocess_env

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))


pytestmark = pytest.mark.usefixtures('single_thread')


@pytest.fixture(scope='module')
def ckpt(tmp_path_factory):
    path = tmp_path_factory.mktemp('ckpt') / 'tiny.pth'
    write_tiny_checkpoint(path)
    return str(path)


@pytest.fixture(scope='module')
def lr_folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp('lr')
    write_image(folder / 'a.png', 12, 10, seed=1)
    write_image(folder / 'b.png', 8, 14, seed=2)
    return str(folder)


def _read(path):
    img = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    assert img is not None, path
    return img


# ------------------------------------------------------------------------------------------------ checkpoints
def test_load_srflow_rebuilds_the_saved_network_from_the_checkpoint_config(ckpt):
    net = load_srflow(ckpt)
    lq = torch.rand(1, 3, 6, 8, generator=torch.Generator().manual_seed(0))
    latents = net.draw_latents(6, 8, 0.8, torch.Generator().manual_seed(1))
    with torch.no_grad():
        assert torch.equal(net.decode(lq, latents=latents), tiny_net().decode(lq, latents=latents))
    assert not net.training


def test_load_srflow_prefers_params_ema(tmp_path):
    params, ema = tiny_net(0).state_dict(), tiny_net(1).state_dict()
    torch.save({'params': params, 'params_ema': ema, 'network_g': {'type': 'SRFlowNet', **TINY}}, tmp_path / 'c.pth')
    loaded = load_srflow(str(tmp_path / 'c.pth')).state_dict()
    assert all(torch.equal(loaded[k], ema[k]) for k in ema)


def test_load_srflow_takes_network_g_from_an_option_file_for_training_checkpoints(tmp_path):
    torch.save({'params': tiny_net().state_dict()}, tmp_path / 'net_g_10.pth')
    with open(tmp_path / 'train.yml', 'w') as f:
        yaml.safe_dump({'name': 'x', 'network_g': {'type': 'SRFlowNet', **TINY}}, f)
    net = load_srflow(str(tmp_path / 'net_g_10.pth'), opt=str(tmp_path / 'train.yml'))
    assert net.scale == 4 and len(net.encoder.body) == 1


def test_load_srflow_without_any_network_config_names_the_file(tmp_path):
    torch.save({'params': tiny_net().state_dict()}, tmp_path / 'bare.pth')
    with pytest.raises(ValueError, match=r'bare\.pth.*no network configuration'):
        load_srflow(str(tmp_path / 'bare.pth'))


def test_load_srflow_with_mismatching_keys_names_the_file_and_the_keys(tmp_path):
    state = tiny_net().state_dict()
    del state['encoder.conv_first.weight']
    torch.save({'params': state, 'network_g': {'type': 'SRFlowNet', **TINY}}, tmp_path / 'broken.pth')
    with pytest.raises(ValueError, match=r'broken\.pth(.|\n)*missing keys \(1\).*encoder\.conv_first\.weight'):
        load_srflow(str(tmp_path / 'broken.pth'))


# ------------------------------------------------------------------------------------------------ sampling
def test_draw_latents_draws_what_decode_draws_from_an_equally_seeded_generator():
    net = tiny_net()
    lq = torch.rand(1, 3, 6, 10)
    with torch.no_grad():
        cond = net.condition(lq)
        drawn = net.decode(cond=cond, temperature=0.8, generator=torch.Generator().manual_seed(7))
        ours = net.decode(cond=cond, latents=net.draw_latents(6, 10, 0.8, torch.Generator().manual_seed(7)))
    assert torch.equal(drawn, ours)


def test_samples_of_one_image_share_one_lr_encoding():
    net = tiny_net()
    calls = []
    condition = net.condition
    net.condition = lambda lq: calls.append(tuple(lq.shape)) or condition(lq)
    samples = sampling.sample_image(net, torch.rand(1, 3, 6, 6), [0.0, 0.8, 0.9], 3, torch.Generator())
    assert len(samples) == 1 + 3 + 3 and calls == [(1, 3, 6, 6)]


def test_temperature_zero_gives_one_sample_and_every_temperature_scales_the_same_noise_per_sample():
    net = tiny_net()
    lq = torch.rand(1, 3, 6, 8, generator=torch.Generator().manual_seed(0))
    samples = sampling.sample_image(net, lq, [0.0, 0.8, 0.9], 2, torch.Generator().manual_seed(5))
    assert sorted(samples) == [(0.0, 0), (0.8, 0), (0.8, 1), (0.9, 0), (0.9, 1)]
    generator = torch.Generator().manual_seed(5)
    noise = [net.draw_latents(6, 8, 1.0, generator) for _ in range(2)]  # z_0, z_1: sample k decodes T * z_k
    with torch.no_grad():
        assert torch.equal(samples[(0.0, 0)], net.decode(lq, latents=[0 * z for z in noise[0]]))
        for t, k in [(0.8, 0), (0.8, 1), (0.9, 1)]:
            assert torch.equal(samples[(t, k)], net.decode(lq, latents=[t * z for z in noise[k]]))


def test_a_sample_does_not_depend_on_the_other_temperatures_asked_for():
    net = tiny_net()
    lq = torch.rand(1, 3, 6, 8, generator=torch.Generator().manual_seed(0))
    alone = sampling.sample_image(net, lq, [0.8], 2, torch.Generator().manual_seed(5))
    among = sampling.sample_image(net, lq, [0.0, 0.5, 0.8], 2, torch.Generator().manual_seed(5))
    assert all(torch.equal(alone[(0.8, k)], among[(0.8, k)]) for k in (0, 1))


def test_cli_writes_every_sample_at_every_temperature_but_one_at_zero_at_scale_times_the_lr_size(
        ckpt, lr_folder, tmp_path):
    out = tmp_path / 'out'
    sample_tool.main(['-i', lr_folder, '-c', ckpt, '-o', str(out), '--temperatures', '0', '0.8',
                      '--num_samples', '2'])
    expected = {f'{n}_t0.8_s{s}.png' for n in 'ab' for s in (0, 1)} | {'a_t0_s0.png', 'b_t0_s0.png'}
    assert set(os.listdir(out)) == expected
    assert _read(out / 'a_t0.8_s1.png').shape == (48, 40, 3)
    assert _read(out / 'b_t0_s0.png').shape == (32, 56, 3)


def test_samples_above_temperature_zero_differ(ckpt, lr_folder, tmp_path):
    out = tmp_path / 'out'
    sample_tool.main(['-i', lr_folder, '-c', ckpt, '-o', str(out), '--temperatures', '0.9', '--num_samples', '2'])
    diff = np.abs(_read(out / 'a_t0.9_s0.png').astype(int) - _read(out / 'a_t0.9_s1.png'))
    assert diff.mean() > 1.0


def test_repeated_temperatures_are_an_error(ckpt, lr_folder, tmp_path, capsys):
    with pytest.raises(SystemExit):
        sample_tool.main(['-i', lr_folder, '-c', ckpt, '-o', str(tmp_path / 'o'), '--temperatures', '0.8', '0.80'])
    assert '--temperatures repeat a temperature (as written in file names: 0.8 0.8)' in capsys.readouterr().err


def test_samples_depend_on_seed_and_image_name_not_on_the_other_images(ckpt, lr_folder, tmp_path):
    sample_tool.main(['-i', lr_folder, '-c', ckpt, '-o', str(tmp_path / 'both'), '--temperatures', '0.8',
                      '--num_samples', '1', '--seed', '3'])
    sample_tool.main(['-i', osp.join(lr_folder, 'b.png'), '-c', ckpt, '-o', str(tmp_path / 'alone'),
                      '--temperatures', '0.8', '--num_samples', '1', '--seed', '3'])
    sample_tool.main(['-i', osp.join(lr_folder, 'b.png'), '-c', ckpt, '-o', str(tmp_path / 'seed4'),
                      '--temperatures', '0.8', '--num_samples', '1', '--seed', '4'])
    b = _read(tmp_path / 'both' / 'b_t0.8_s0.png')
    assert np.array_equal(b, _read(tmp_path / 'alone' / 'b_t0.8_s0.png'))
    assert not np.array_equal(b, _read(tmp_path / 'seed4' / 'b_t0.8_s0.png'))


def test_tiled_sampling_writes_the_same_pictures_as_untiled(ckpt, tmp_path, device):
    write_image(tmp_path / 'lr' / 'big.png', 72, 64, seed=5)
    common = ['-i', str(tmp_path / 'lr'), '-c', ckpt, '--temperatures', '0.8', '--num_samples', '1', '--device',
              str(device)]
    sample_tool.main(common + ['-o', str(tmp_path / 'whole')])
    sample_tool.main(common + ['-o', str(tmp_path / 'tiled'), '--tile', '24', '--tile_overlap', '28'])
    whole, tiled = _read(tmp_path / 'whole' / 'big_t0.8_s0.png'), _read(tmp_path / 'tiled' / 'big_t0.8_s0.png')
    assert np.abs(whole.astype(int) - tiled).max() <= 1  # float differences of ~1e-5 may flip a rounding


def test_an_unreadable_image_is_an_error_naming_it(ckpt, tmp_path):
    write_image(tmp_path / 'lr' / 'good.png', 8, 8)
    (tmp_path / 'lr' / 'broken.png').write_bytes(b'not a png')
    with pytest.raises(OSError, match=r'broken\.png'):
        sample_tool.main(['-i', str(tmp_path / 'lr'), '-c', ckpt, '-o', str(tmp_path / 'out')])


def test_div2k_lr_names_lose_their_scale_suffix_so_measure_py_pairs_them_with_the_gt():
    assert image_name('/d/0801x4.png', 4) == '0801'
    assert image_name('/d/0801x4.png', 8) == '0801x4'
    assert output_name('0801', 0.9, 2) == '0801_t0.9_s2.png'
    assert output_name('0801', 0, 0) == '0801_t0_s0.png'


@pytest.mark.parametrize('file, name', [('box4.png', 'box4'), ('img_x4.png', 'img_x4'), ('x4.png', 'x4'),
                                        ('cat_0801x4.png', 'cat_0801'), ('0801x8.png', '0801x8')])
def test_the_scale_suffix_is_only_removed_after_a_digit(file, name):
    assert image_name(f'/d/{file}', 4) == name


@pytest.mark.parametrize('files', [('0801.png', '0801x4.png'), ('a.jpg', 'a.png')])
def test_inputs_with_the_same_output_name_are_an_error_naming_both_files(ckpt, tmp_path, files):
    for i, file in enumerate(files):
        write_image(tmp_path / 'lr' / file, 8, 8, seed=i)
    with pytest.raises(ValueError, match='same output name') as error:
        sample_tool.main(['-i', str(tmp_path / 'lr'), '-c', ckpt, '-o', str(tmp_path / 'out'),
                          '--temperatures', '0.8', '--num_samples', '1'])
    assert all(str(tmp_path / 'lr' / file) in str(error.value) for file in files)
    assert not (tmp_path / 'out').exists()  # checked before anything is written


def test_grid_has_a_reference_row_and_one_row_per_positive_temperature(ckpt, tmp_path):
    lq = write_image(tmp_path / 'lr' / 'img.png', 10, 8, seed=3)
    gt = write_image(tmp_path / 'gt' / 'img.png', 40, 32, seed=4)
    sample_tool.main(['-i', str(tmp_path / 'lr'), '-c', ckpt, '-o', str(tmp_path / 'out'), '--temperatures', '0',
                      '0.8', '0.9', '--num_samples', '2', '--grid', '--gt', str(tmp_path / 'gt')])
    grid = _read(tmp_path / 'out_grids' / 'img_grid.png')
    tile_h, tile_w, gap = 40, 32, 4
    # rows: [LR, bicubic, tau=0, GT], [tau=0.8 x 2], [tau=0.9 x 2]
    assert grid.shape == (gap + 3 * (label_height(tile_w) + tile_h + gap), gap + 4 * (tile_w + gap), 3)
    y, x = tile_origin(0, 3, tile_h, tile_w)
    assert np.array_equal(grid[y:y + tile_h, x:x + tile_w], gt)
    y, x = tile_origin(0, 0, tile_h, tile_w)
    assert np.array_equal(grid[y:y + tile_h:4, x:x + tile_w:4], lq)
    y, x = tile_origin(2, 1, tile_h, tile_w)
    assert np.array_equal(grid[y:y + tile_h, x:x + tile_w], _read(tmp_path / 'out' / 'img_t0.9_s1.png'))


def test_command_runs_as_a_module_from_a_checkout(ckpt, lr_folder, tmp_path):
    result = subprocess.run([sys.executable, '-m', 'srflow_plugin.tools.sample', '-i', osp.join(lr_folder, 'a.png'),
                             '-c', ckpt, '-o', str(tmp_path / 'o'), '--num_samples', '1', '--temperatures', '0.5'],
                            capture_output=True, text=True, env=subprocess_env(), cwd=str(tmp_path))
    assert result.returncode == 0, result.stderr
    assert os.listdir(tmp_path / 'o') == ['a_t0.5_s0.png']


def test_gt_without_grid_is_an_error_naming_the_options(ckpt, lr_folder, tmp_path, capsys):
    with pytest.raises(SystemExit):
        sample_tool.main(['-i', lr_folder, '-c', ckpt, '-o', str(tmp_path / 'o'), '--gt', lr_folder])
    assert '--gt is only used by the picture grids: add --grid' in capsys.readouterr().err
