"""scikit-image's photographs as data for the demo and the CPU-scale studies: nothing is downloaded (the photographs
ship inside scikit-image). Shared by ``demo.py``, ``flow_vs_gan.py`` and ``real_world_study.py``.

- :func:`photo`: one photograph as uint8 BGR, the form ``cv2.imwrite`` and the package read.
- :data:`TRAIN_PHOTOS`: the training photographs (the first two with ``--quick``); :data:`TEST_PHOTOS` and
  :func:`test_crops`: the held-out crops of the three colour photographs no model trains on.
- :func:`make_data`: the training photographs cut into sub-images with MATLAB-bicubic LR images and LMDBs, and a
  held-out folder pair (``srflow-prepare-data``); :func:`study_data`: the studies' (128x128 sub-images, the test
  crops).
"""
import contextlib
import os
import shutil
from os import path as osp

import cv2
import numpy as np
from skimage import data as skimage_data

from srflow_plugin.tools.prepare_data import prepare

SCALE = 4
TRAIN_PHOTOS = ['astronaut', 'coffee', 'rocket', 'immunohistochemistry', 'hubble_deep_field']
QUICK_TRAIN_PHOTOS = 2
TEST_PHOTOS = ['chelsea', 'motorcycle_left', 'motorcycle_right']
TEST_CROP, TEST_STRIDE, QUICK_TEST_CROPS = 64, 32, 12


def photo(name):
    """A scikit-image photograph by its ``skimage.data`` name as uint8 BGR; ``motorcycle_left`` and
    ``motorcycle_right`` are the two views of the stereo pair, a grey photograph gets three equal channels."""
    if name.startswith('motorcycle_'):
        rgb = skimage_data.stereo_motorcycle()[0 if name.endswith('left') else 1]
    else:
        rgb = getattr(skimage_data, name)()
    if rgb.ndim == 2:
        rgb = np.stack([rgb] * 3, -1)
    return cv2.cvtColor(np.ascontiguousarray(rgb[..., :3]), cv2.COLOR_RGB2BGR)


def test_crops(quick=False, size=TEST_CROP, stride=TEST_STRIDE):
    """{name: HR crop}: ``size``-sized crops at ``stride`` of every test photograph (QUICK_TEST_CROPS of them when
    quick)."""
    crops = {}
    for name in TEST_PHOTOS:
        img = photo(name)
        h, w = img.shape[:2]
        for y in range(0, h - size + 1, stride):
            for x in range(0, w - size + 1, stride):
                crops[f'{name}_{y:03d}_{x:03d}'] = img[y:y + size, x:x + size]
    return dict(list(crops.items())[:QUICK_TEST_CROPS]) if quick else crops


def make_data(root, held_out, quick, crop_size, step, names=('train', 'test'), held_out_folder='hr_test',
              log_path=os.devnull):
    """The training photographs as sub-images (LMDBs) and the held-out images as a folder pair, both with
    MATLAB-bicubic LR x``SCALE`` images (``srflow-prepare-data``, which writes its progress to ``log_path``).

    Args:
        root (str): Data folder: ``hr_train/``, ``held_out_folder`` and what prepare writes.
        held_out (dict[str, ndarray]): Held-out image name -> HR image (uint8 BGR).
        quick (bool): Only the first QUICK_TRAIN_PHOTOS training photographs.
        crop_size (int): Training sub-image size (HR pixels).
        step (int): Training sub-image step.
        names (tuple[str, str]): prepare's names of the training and the held-out set.
        held_out_folder (str): Folder of the held-out HR images in ``root``; written again on every run.
        log_path (str): Where prepare's output goes.

    Returns:
        tuple: prepare()'s results for the training and the held-out set.
    """
    hr_train, hr_held_out = osp.join(root, 'hr_train'), osp.join(root, held_out_folder)
    os.makedirs(hr_train, exist_ok=True)
    if osp.isdir(hr_held_out):  # held-out images of an earlier run (of this folder) are replaced, not added to
        shutil.rmtree(hr_held_out)
    os.makedirs(hr_held_out)
    for name in TRAIN_PHOTOS[:QUICK_TRAIN_PHOTOS] if quick else TRAIN_PHOTOS:
        cv2.imwrite(osp.join(hr_train, f'{name}.png'), photo(name))
    for name, img in held_out.items():
        cv2.imwrite(osp.join(hr_held_out, f'{name}.png'), img)
    with open(log_path, 'w') as log, contextlib.redirect_stdout(log), contextlib.redirect_stderr(log):
        train = prepare(hr_train, root, scales=(SCALE, ), crop_size=crop_size, step=step, thresh_size=0,
                        name=names[0], overwrite=True)
        test = prepare(hr_held_out, root, scales=(SCALE, ), crop_size=0, name=names[1], lmdb=False, overwrite=True)
    return train, test


def study_data(root, quick=False, log_path=os.devnull, test_size=TEST_CROP, test_stride=TEST_STRIDE):
    """The CPU-scale studies' data: 128x128 training sub-images (step 64, 96 when quick) and the :func:`test_crops` of
    ``test_size`` at ``test_stride``; returns :func:`make_data`'s results."""
    return make_data(root, test_crops(quick, test_size, test_stride), quick, crop_size=128, step=96 if quick else 64,
                     log_path=log_path)
