"""Prepare SRFlow training / validation data: GT sub-images, MATLAB-bicubic LR images and LMDBs.

Like BasicSR's scripts/data_preparation (extract_subimages.py + create_lmdb.py), for any folder of
images (DIV2K, Flickr2K, ...), with the LR images made here from each GT sub-image so that LR and GT
match exactly:

    srflow-prepare-data --input datasets/DIV2K/DIV2K_train_HR --output datasets/DIV2K --scales 4 8

writes, for --name DIV2K_train_HR (the default: the input folder's name),

    <output>/DIV2K_train_HR_sub/0001_s001.png ...          GT sub-images
    <output>/DIV2K_train_HR_sub_bicLRx4/0001_s001.png ...  LR x4, same file names
    <output>/DIV2K_train_HR_sub.lmdb, <output>/DIV2K_train_HR_sub_bicLRx4.lmdb, ...

The LMDB keys are the file stems, identical for GT and LR, as BasicSR's PairedImageDataset
(io_backend: lmdb) expects. With --crop_size 0 whole images are kept (for validation sets); they are
cropped at the bottom/right to a multiple of the scales and the folders are named <name>_mod<m>.
"""
import argparse
import math
import os
import shutil
import sys
from functools import partial
from multiprocessing import Pool
from os import path as osp

import cv2
import numpy as np
from basicsr.utils.lmdb_util import make_lmdb_from_imgs
from tqdm import tqdm

from srflow_plugin.metrics.lr_psnr import bicubic_downscale
from srflow_plugin.tools.command import HelpFormatter, console_command
from srflow_plugin.utils.image import images_in, read_image
from srflow_plugin.utils.lmdb_check import write_checksums
from srflow_plugin.utils.paths import OWNER_MANIFEST, check_outputs, mark_owned, owned

COMMAND = 'srflow-prepare-data'


def crop_starts(length, tile, step, thresh_size):
    """Start offsets of tiles along one axis, as BasicSR's extract_subimages.py.

    Tiles start every ``step`` pixels; one more tile is aligned to the end when more than
    ``thresh_size`` pixels would be left uncovered.

    Args:
        length (int): Image height or width.
        tile (int): Tile size (<= length).
        step (int): Distance between tile starts.
        thresh_size (int): Largest remainder that is dropped.

    Returns:
        list[int]: Start offsets.
    """
    starts = list(range(0, length - tile + 1, step))
    if length - (starts[-1] + tile) > thresh_size:
        starts.append(length - tile)
    return starts


def process_image(path, gt_folder, lr_folders, crop_size, step, thresh_size, multiple, compression_level):
    """Crop one image into GT sub-images and write them and their LR versions.

    Args:
        path (str): Source image.
        gt_folder (str): Folder for the GT sub-images.
        lr_folders (dict[int, str]): Scale -> folder for the LR images.
        crop_size (int): Sub-image size; 0 keeps the whole image.
        step (int): Distance between sub-image starts.
        thresh_size (int): Largest remainder at the bottom/right that gets no extra sub-image.
        multiple (int): Sub-image sizes are cut down to a multiple of this (lcm of the scales).
        compression_level (int): PNG compression level.

    Returns:
        tuple[list[str], tuple[int]]: File names written (the same in every folder) and the GT
        sub-image shape (H, W, C), common to all of them.
    """
    img = read_image(path)
    h, w = img.shape[:2]
    stem = osp.splitext(osp.basename(path))[0]
    png = [cv2.IMWRITE_PNG_COMPRESSION, compression_level]
    if crop_size:
        tile_h, tile_w = (min(crop_size, n) // multiple * multiple for n in (h, w))
    else:
        tile_h, tile_w = h // multiple * multiple, w // multiple * multiple
    if tile_h == 0 or tile_w == 0:
        raise ValueError(f'Image {path} of size {h}x{w} is smaller than the scale {multiple}.')
    if crop_size:
        tiles = [(y, x) for y in crop_starts(h, tile_h, step, thresh_size)
                 for x in crop_starts(w, tile_w, step, thresh_size)]
        names = [f'{stem}_s{i:03d}.png' for i in range(1, len(tiles) + 1)]
    else:
        tiles, names = [(0, 0)], [f'{stem}.png']
    for (y, x), name in zip(tiles, names):
        gt = np.ascontiguousarray(img[y:y + tile_h, x:x + tile_w])
        cv2.imwrite(osp.join(gt_folder, name), gt, png)
        for scale, folder in lr_folders.items():
            cv2.imwrite(osp.join(folder, name), bicubic_downscale(gt, scale), png)
    return names, (tile_h, tile_w, img.shape[2])


def list_images(input_folders):
    """Sorted image files of the folders (not recursive), with unique ASCII stems. Image files are recognised by
    their extension in any case (``.png``, ``.Png``, ``.PNG``, ...).

    Args:
        input_folders (list[str]): Folders.

    Returns:
        list[str]: Full paths.
    """
    paths, owner = [], {}
    for folder in input_folders:
        if not osp.isdir(folder):
            raise FileNotFoundError(f'Input folder {folder} does not exist.')
        for path in images_in(folder):
            stem = osp.splitext(osp.basename(path))[0]
            if not stem.isascii():
                raise ValueError(f'Image {path}: LMDB keys must be ASCII, rename the file.')
            if '.' in stem:
                raise ValueError(f"Image {path}: its name has a dot before the extension; BasicSR's LMDB reader cuts "
                                 'keys at the first dot (two images could become one), rename the file.')
            if stem in owner:
                raise ValueError(f'Images {owner[stem]} and {path} have the same name; keys would clash.')
            owner[stem] = path
            paths.append(path)
    if not paths:
        raise FileNotFoundError(f'No images in {input_folders}.')
    return paths


def prepare(input_folder,
            output_root,
            scales=(4, ),
            crop_size=480,
            step=240,
            thresh_size=48,
            name=None,
            lmdb=True,
            n_thread=1,
            compression_level=3,
            overwrite=False):
    """Make GT sub-images, bicubic LR images for each scale and (optionally) LMDBs of both.

    Args:
        input_folder (str | list[str]): Folder(s) of HR images, e.g. DIV2K_train_HR and Flickr2K_HR.
        output_root (str): Where the folders and LMDBs are created.
        scales (tuple[int]): LR scales, each of 2, 4, 8 (any positive integer works). Default: (4,).
        crop_size (int): GT sub-image size, cut down to a multiple of lcm(scales); 0 keeps whole
            images (cropped to a multiple of lcm(scales)). Default: 480.
        step (int): Distance between sub-image starts. Default: 240.
        thresh_size (int): A remainder at the bottom/right larger than this gets one more sub-image
            aligned to the border. Default: 48.
        name (str | None): Base name of the outputs. Default: name of the (first) input folder.
        lmdb (bool): Also write LMDBs with meta_info.txt. Default: True.
        n_thread (int): Processes for cropping and resizing; 1 runs in this process. Default: 1.
        compression_level (int): PNG compression of the written images. Default: 3.
        overwrite (bool): Replace existing outputs that an earlier run wrote (listed in ``.srflow-outputs``
            beside them) instead of raising FileExistsError; nothing else is ever removed. Default: False.

    An unreadable, truncated or too small image is an error naming it, and nothing is left in ``output_root``.
    An output that is, contains or lies inside an input folder is refused before anything is written
    (:mod:`srflow_plugin.utils.paths`).

    Returns:
        dict: ``gt`` (folder), ``lr`` ({scale: folder}), ``gt_lmdb`` and ``lr_lmdb`` ({scale: path})
        (None / {} when lmdb=False) and ``keys`` (list of sub-image stems, the LMDB keys).
    """
    folders = [input_folder] if isinstance(input_folder, (str, os.PathLike)) else list(input_folder)
    folders = [str(f) for f in folders]
    scales, multiple = _scales_and_multiple(scales, crop_size, step)
    name = name or osp.basename(osp.normpath(folders[0]))
    outputs = _output_paths(output_root, f'{name}_sub' if crop_size else f'{name}_mod{multiple}', scales, lmdb)
    targets = [outputs['gt'], *outputs['lr'].values()]
    targets += [outputs['gt_lmdb'], *outputs['lr_lmdb'].values()] if lmdb else []
    check_outputs({f'folder {osp.basename(t)} of --output': t for t in targets}, {'--input': folders})
    paths = list_images(folders)
    _remove_earlier_outputs(targets, overwrite)

    try:
        _write_outputs(paths, outputs, scales, crop_size, step, thresh_size, multiple, compression_level, lmdb,
                       n_thread)
    except BaseException:
        _remove_partial_outputs(targets)  # a re-run needs no --overwrite
        raise
    return outputs


def _scales_and_multiple(scales, crop_size, step):
    """(the distinct scales, sorted; their lcm, to which every GT size is cut down). ValueError for a scale < 1, or
    for sub-images (``crop_size`` > 0) with ``step`` <= 0 or smaller than that lcm."""
    scales = sorted({int(s) for s in scales})
    if not scales or min(scales) < 1:
        raise ValueError(f'Scales must be positive integers, got {scales}.')
    multiple = math.lcm(*scales)
    if crop_size and (step <= 0 or crop_size < multiple):
        raise ValueError(f'Need step > 0 and crop_size >= {multiple} (lcm of scales), got {crop_size}/{step}.')
    return scales, multiple


def _output_paths(output_root, stem, scales, lmdb):
    """The folders and LMDBs :func:`prepare` writes, named from ``stem``: ``gt`` (folder), ``lr`` ({scale:
    folder}), ``gt_lmdb`` and ``lr_lmdb`` ({scale: path}; None / {} without ``lmdb``)."""
    base = osp.join(str(output_root), stem)
    return {
        'gt': base,
        'lr': {s: f'{base}_bicLRx{s}'
               for s in scales},
        'gt_lmdb': f'{base}.lmdb' if lmdb else None,
        'lr_lmdb': {s: f'{base}_bicLRx{s}.lmdb'
                    for s in scales} if lmdb else {},
    }


def _remove_earlier_outputs(targets, overwrite):
    """Removes the ``targets`` that exist, once all are checked: each must be allowed to go (``overwrite``) and
    have been written by this command (listed in its owner manifest); else FileExistsError naming it."""
    for target in targets:  # all checked before the first is removed
        if osp.exists(target) and not overwrite:
            raise FileExistsError(f'{target} exists; remove it or pass overwrite=True (--overwrite).')
        if osp.exists(target) and not owned(target, COMMAND):
            raise FileExistsError(f'{target} exists and was not written by {COMMAND} (it is not listed in '
                                  f'{OWNER_MANIFEST} beside it): --overwrite replaces only its own outputs; move it '
                                  'away.')
    for target in targets:
        if osp.exists(target):
            shutil.rmtree(target)


def _remove_partial_outputs(targets):
    """Removes what a failed or interrupted run wrote of ``targets`` and their entries in the owner manifest."""
    for target in targets:
        if osp.isdir(target):
            shutil.rmtree(target)
        mark_owned(target, COMMAND, owned_now=False)


def _write_outputs(paths, outputs, scales, crop_size, step, thresh_size, multiple, compression_level, lmdb,
                   n_thread):
    for folder in [outputs['gt'], *outputs['lr'].values()]:
        os.makedirs(folder)
        mark_owned(folder, COMMAND)
    work = partial(process_image, gt_folder=outputs['gt'], lr_folders=outputs['lr'], crop_size=crop_size, step=step,
                   thresh_size=thresh_size, multiple=multiple, compression_level=compression_level)
    names, pixels = [], 0
    with tqdm(total=len(paths), unit='image', desc='Crop and downscale') as pbar:
        if n_thread > 1:
            with Pool(n_thread) as pool:
                for written, shape in pool.imap(work, paths):
                    names += written
                    pixels += len(written) * int(np.prod(shape))
                    pbar.update(1)
        else:
            for path in paths:
                written, shape = work(path)
                names += written
                pixels += len(written) * int(np.prod(shape))
                pbar.update(1)
    keys = [osp.splitext(n)[0] for n in names]

    if lmdb:
        jobs = [(outputs['gt'], outputs['gt_lmdb'], 1)]
        jobs += [(outputs['lr'][s], outputs['lr_lmdb'][s], s) for s in scales]
        for folder, lmdb_path, scale in jobs:
            # map_size from the raw pixel count: BasicSR's estimate from the first image alone can be
            # too small when that image compresses better than the rest (LMDB files are sparse).
            map_size = int(2 * pixels / scale**2) + 2**24
            make_lmdb_from_imgs(folder, lmdb_path, names, keys, map_size=map_size)
            write_checksums(lmdb_path)  # checked when a dataset is built (utils/lmdb_check.py)
            mark_owned(lmdb_path, COMMAND)
    outputs['keys'] = keys


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        prog='srflow-prepare-data', formatter_class=HelpFormatter,
        description='Crop GT sub-images, make MATLAB-bicubic LR images and LMDBs for SRFlow training.')
    parser.add_argument('--input', required=True, nargs='+', help='Folder(s) of HR images (not recursive).')
    parser.add_argument('--output', required=True, help='Folder in which the outputs are created.')
    parser.add_argument('--scales', type=int, nargs='+', default=[4], help='LR scales, e.g. 4 or 2 4 8')
    parser.add_argument(
        '--crop_size', type=int, default=480, help='GT sub-image size; 0 keeps whole images')
    parser.add_argument('--step', type=int, default=240, help='Distance between sub-images')
    parser.add_argument(
        '--thresh_size', type=int, default=48, help='Largest border remainder without an extra sub-image')
    parser.add_argument('--name', default=None, help='Base name of the outputs')
    parser.add_argument('--no_lmdb', action='store_true', help='Only write PNG folders.')
    parser.add_argument('--n_thread', type=int, default=1, help='Worker processes')
    parser.add_argument('--compression_level', type=int, default=3, help='PNG compression level')
    parser.add_argument('--overwrite', action='store_true', help='Replace existing outputs of an earlier run of this '
                        'command (never anything it did not write).')
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    out = prepare(
        args.input,
        args.output,
        scales=args.scales,
        crop_size=args.crop_size,
        step=args.step,
        thresh_size=args.thresh_size,
        name=args.name,
        lmdb=not args.no_lmdb,
        n_thread=args.n_thread,
        compression_level=args.compression_level,
        overwrite=args.overwrite)
    print(f"{len(out['keys'])} GT images in {out['gt']}")
    for scale, folder in out['lr'].items():
        print(f'LR x{scale} in {folder}')
    if out['gt_lmdb']:
        print('LMDBs:', out['gt_lmdb'], *out['lr_lmdb'].values())


cli = console_command(main, COMMAND)

if __name__ == '__main__':
    sys.exit(cli())
