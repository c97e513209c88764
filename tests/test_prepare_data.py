"""srflow-prepare-data (srflow_plugin.tools.prepare_data): GT sub-images, MATLAB-bicubic LR images, LMDBs readable
by BasicSR."""
import os
import subprocess
import sys
from os import path as osp

import cv2
import numpy as np
import pytest
from basicsr.data.paired_image_dataset import PairedImageDataset
from basicsr.utils.matlab_functions import imresize

from srflow_plugin.tools import prepare_data
from helpers.train import subprocess_env

# with crop_size=48, step=24, thresh_size=8:
#   a.png 100x90: rows start 0, 24, 48 (4 px left <= 8); columns 0, 24 and 42 (18 px left > 8) -> 9
#   b.png  40x60: one 40-px row (the image is lower than 48); columns 0 and 12 -> 2, each 40x48
SIZES = {'a': (100, 90), 'b': (40, 60)}
CROP = dict(crop_size=48, step=24, thresh_size=8)


@pytest.fixture
def hr_folder(tmp_path):
    folder = tmp_path / 'HR'
    folder.mkdir()
    rng = np.random.default_rng(0)
    for stem, (h, w) in SIZES.items():
        cv2.imwrite(str(folder / f'{stem}.png'), rng.integers(0, 256, (h, w, 3), dtype=np.uint8))
    (folder / 'notes.txt').write_text('not an image, ignored')
    return folder


def _matlab_down(img, scale):
    return np.clip(np.round(imresize(img.astype(np.float32) / 255., 1 / scale) * 255.), 0, 255).astype(np.uint8)


def test_sub_image_names_count_and_sizes(hr_folder, tmp_path):
    out = prepare_data.prepare(str(hr_folder), str(tmp_path / 'out'), scales=(4, ), lmdb=False, **CROP)
    assert out['gt'] == str(tmp_path / 'out' / 'HR_sub')
    files = sorted(os.listdir(out['gt']))
    assert files == [f'a_s{i:03d}.png' for i in range(1, 10)] + ['b_s001.png', 'b_s002.png']
    assert out['keys'] == [f[:-4] for f in files]
    assert cv2.imread(osp.join(out['gt'], 'a_s009.png')).shape == (48, 48, 3)
    assert cv2.imread(osp.join(out['gt'], 'b_s002.png')).shape == (40, 48, 3)
    # the last column of a.png is aligned to the right border
    src = cv2.imread(str(hr_folder / 'a.png'))
    assert np.array_equal(cv2.imread(osp.join(out['gt'], 'a_s009.png')), src[48:96, 42:90])


def test_lr_images_are_the_matlab_bicubic_downscale_of_the_gt_sub_images(hr_folder, tmp_path):
    out = prepare_data.prepare(str(hr_folder), str(tmp_path / 'out'), scales=(2, 4), lmdb=False, **CROP)
    assert sorted(out['lr']) == [2, 4]
    for scale in (2, 4):
        assert out['lr'][scale] == str(tmp_path / 'out' / f'HR_sub_bicLRx{scale}')
        assert sorted(os.listdir(out['lr'][scale])) == sorted(os.listdir(out['gt']))
        for name in ('a_s001.png', 'b_s002.png'):
            gt = cv2.imread(osp.join(out['gt'], name))
            lr = cv2.imread(osp.join(out['lr'][scale], name))
            assert lr.shape == (gt.shape[0] // scale, gt.shape[1] // scale, 3)
            assert np.array_equal(lr, _matlab_down(gt, scale))


def test_sub_images_are_cut_to_a_multiple_of_all_scales(tmp_path):
    folder = tmp_path / 'HR'
    folder.mkdir()
    cv2.imwrite(str(folder / 'c.png'), np.full((30, 100, 3), 7, np.uint8))
    # crop 50 -> 48 (multiple of 8): columns start at 0 and 48 (4 px left); the 30-px height -> 24
    out = prepare_data.prepare(str(folder), str(tmp_path / 'out'), scales=(2, 8), crop_size=50, step=48,
                               thresh_size=8, lmdb=False)
    assert sorted(os.listdir(out['gt'])) == ['c_s001.png', 'c_s002.png']
    assert cv2.imread(osp.join(out['gt'], 'c_s002.png')).shape == (24, 48, 3)
    assert cv2.imread(osp.join(out['lr'][8], 'c_s002.png')).shape == (3, 6, 3)


def test_crop_size_0_keeps_whole_images_cropped_to_the_scale(hr_folder, tmp_path):
    out = prepare_data.prepare(str(hr_folder), str(tmp_path / 'out'), scales=(8, ), crop_size=0, lmdb=False)
    assert out['gt'] == str(tmp_path / 'out' / 'HR_mod8')
    assert sorted(os.listdir(out['gt'])) == ['a.png', 'b.png']
    src = cv2.imread(str(hr_folder / 'a.png'))
    assert np.array_equal(cv2.imread(osp.join(out['gt'], 'a.png')), src[:96, :88])
    assert cv2.imread(osp.join(out['lr'][8], 'a.png')).shape == (12, 11, 3)


def test_image_extensions_are_recognised_in_any_case(hr_folder, tmp_path):
    cv2.imwrite(str(hr_folder / 'c.Png'), np.full((48, 48, 3), 7, np.uint8))
    cv2.imwrite(str(hr_folder / 'd.JPG'), np.full((48, 48, 3), 9, np.uint8))
    out = prepare_data.prepare(str(hr_folder), str(tmp_path / 'out'), scales=(4, ), crop_size=0, lmdb=False)
    assert sorted(os.listdir(out['gt'])) == ['a.png', 'b.png', 'c.png', 'd.png']  # notes.txt is not an image
    assert (cv2.imread(osp.join(out['gt'], 'c.png')) == 7).all()


def test_lmdb_meta_info_lists_every_key_with_its_shape(hr_folder, tmp_path):
    out = prepare_data.prepare(str(hr_folder), str(tmp_path / 'out'), scales=(4, ), **CROP)
    assert out['gt_lmdb'] == str(tmp_path / 'out' / 'HR_sub.lmdb')
    assert out['lr_lmdb'] == {4: str(tmp_path / 'out' / 'HR_sub_bicLRx4.lmdb')}
    gt_meta = open(osp.join(out['gt_lmdb'], 'meta_info.txt')).read().splitlines()
    lr_meta = open(osp.join(out['lr_lmdb'][4], 'meta_info.txt')).read().splitlines()
    assert len(gt_meta) == len(lr_meta) == 11
    assert gt_meta[0] == 'a_s001.png (48,48,3) 1'
    assert lr_meta[0] == 'a_s001.png (12,12,3) 1'
    assert gt_meta[-1] == 'b_s002.png (40,48,3) 1'
    assert lr_meta[-1] == 'b_s002.png (10,12,3) 1'


def test_basicsr_paired_image_dataset_reads_the_lmdbs(hr_folder, tmp_path):
    out = prepare_data.prepare(str(hr_folder), str(tmp_path / 'out'), scales=(4, ), **CROP)
    opt = dict(dataroot_gt=out['gt_lmdb'], dataroot_lq=out['lr_lmdb'][4], io_backend=dict(type='lmdb'), scale=4,
               phase='val')
    dataset = PairedImageDataset(opt)
    assert len(dataset) == 11
    item = dataset[10]
    assert item['gt_path'] == item['lq_path'] == 'b_s002'
    assert tuple(item['gt'].shape) == (3, 40, 48)
    assert tuple(item['lq'].shape) == (3, 10, 12)
    png = cv2.imread(osp.join(out['lr'][4], 'b_s002.png'))[:, :, ::-1]  # RGB like the dataset
    assert np.allclose(item['lq'].permute(1, 2, 0).numpy() * 255, png, atol=1e-3)


def test_worker_processes_give_the_same_files(hr_folder, tmp_path):
    one = prepare_data.prepare(str(hr_folder), str(tmp_path / 'one'), lmdb=False, n_thread=1, **CROP)
    two = prepare_data.prepare(str(hr_folder), str(tmp_path / 'two'), lmdb=False, n_thread=2, **CROP)
    assert one['keys'] == two['keys']
    for name in ('a_s005.png', 'b_s001.png'):
        assert np.array_equal(cv2.imread(osp.join(one['lr'][4], name)), cv2.imread(osp.join(two['lr'][4], name)))


@pytest.mark.parametrize('n_thread', [1, 2])
def test_a_corrupt_image_is_an_error_naming_the_file(hr_folder, tmp_path, n_thread):
    (hr_folder / 'x.png').write_bytes(b'this is not a png')
    with pytest.raises(OSError, match=r'x\.png'):
        prepare_data.prepare(str(hr_folder), str(tmp_path / 'out'), lmdb=False, n_thread=n_thread, **CROP)


def test_existing_outputs_are_kept_unless_overwrite(hr_folder, tmp_path):
    prepare_data.prepare(str(hr_folder), str(tmp_path / 'out'), lmdb=False, **CROP)
    with pytest.raises(FileExistsError, match='HR_sub exists; remove it or pass overwrite=True'):
        prepare_data.prepare(str(hr_folder), str(tmp_path / 'out'), lmdb=False, **CROP)
    out = prepare_data.prepare(str(hr_folder), str(tmp_path / 'out'), lmdb=False, overwrite=True, **CROP)
    assert len(os.listdir(out['gt'])) == 11


def test_overwrite_never_removes_a_folder_the_command_did_not_write(hr_folder, tmp_path):
    mine = tmp_path / 'out' / 'HR_sub'
    mine.mkdir(parents=True)
    (mine / 'my_notes.txt').write_text('keep me')
    with pytest.raises(FileExistsError, match='HR_sub exists and was not written by srflow-prepare-data'):
        prepare_data.prepare(str(hr_folder), str(tmp_path / 'out'), lmdb=False, overwrite=True, **CROP)
    assert (mine / 'my_notes.txt').read_text() == 'keep me' and not (tmp_path / 'out' / 'HR_sub_bicLRx4').exists()


def test_an_output_that_is_the_input_is_refused_and_the_input_kept(tmp_path):
    photos = tmp_path / 'D' / 'photos_sub'
    photos.mkdir(parents=True)
    cv2.imwrite(str(photos / 'a.png'), np.zeros((48, 48, 3), np.uint8))
    with pytest.raises(ValueError, match=f'Output folder photos_sub of --output {photos} is the input --input'):
        prepare_data.prepare(str(photos), str(tmp_path / 'D'), name='photos', lmdb=False, overwrite=True, **CROP)
    assert os.listdir(photos) == ['a.png']


def test_a_dot_in_an_image_stem_is_refused_as_basicsr_cuts_lmdb_keys_there(tmp_path):
    folder = tmp_path / 'hr'
    folder.mkdir()
    for name in ('img.png', 'img.edited.png'):
        cv2.imwrite(str(folder / name), np.zeros((48, 48, 3), np.uint8))
    with pytest.raises(ValueError, match=r'img\.edited\.png: its name has a dot before the extension'):
        prepare_data.prepare(str(folder), str(tmp_path / 'out'), **CROP)
    assert not (tmp_path / 'out').exists()


def test_same_stem_in_two_input_folders_is_rejected(hr_folder, tmp_path):
    other = tmp_path / 'more'
    other.mkdir()
    cv2.imwrite(str(other / 'a.png'), np.zeros((48, 48, 3), np.uint8))
    with pytest.raises(ValueError, match='same name'):
        prepare_data.prepare([str(hr_folder), str(other)], str(tmp_path / 'out'), lmdb=False, **CROP)


def test_command_line(hr_folder, tmp_path):
    cmd = [sys.executable, '-m', 'srflow_plugin.tools.prepare_data', '--input', str(hr_folder), '--output',
           str(tmp_path / 'out'), '--scales', '4',
           '--crop_size', '48', '--step', '24', '--thresh_size', '8', '--name', 'demo']
    result = subprocess.run(cmd, cwd=str(tmp_path), env=subprocess_env(), capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert sorted(os.listdir(tmp_path / 'out')) == ['.srflow-outputs', 'demo_sub', 'demo_sub.lmdb',
                                                    'demo_sub_bicLRx4', 'demo_sub_bicLRx4.lmdb']
    assert len(os.listdir(tmp_path / 'out' / 'demo_sub_bicLRx4')) == 11
