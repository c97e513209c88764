"""Rebuild the built-in model's photographs from Debian packages and scikit-image; cut them with srflow-prepare-data.

    python scripts/fetch_photos.py                    # -> datasets/builtin/ (git-ignored), about 2 minutes
    python scripts/fetch_photos.py --no-apt-update    # skip `apt-get update` (package lists already fresh)

Sources (licences from each package's debian/copyright; docs/model-card.md lists them per photo):
 - lomiri-wallpapers-16.04 (Debian): 15 photographs, CC-BY-4.0 / CC-BY-SA-4.0 / CC0-1.0;
 - plasma-workspace-wallpapers (Debian): the 11 of its wallpapers that are photographs, GPL-2+;
 - scikit-image's data module (ships inside the wheel): astronaut, coffee, rocket, hubble_deep_field,
   immunohistochemistry, chelsea (licences in skimage/data/README.txt: public domain / CC0 / CC-BY).
gnome-backgrounds (43.1 in Debian 12) holds only illustrations, so it is not used.

Every photo is shrunk (cv2.INTER_AREA) so that its long side is at most MAX_SIDE pixels: the wallpapers are camera
images of 2560 to 5312 pixels whose finest detail is blurred by lenses and JPEG; shrunk, they look like DIV2K.
The split is fixed (HELD_OUT below): the held-out photos are never cut into training sub-images. Outputs:
  datasets/builtin/train_HR/*.png            training photographs
  datasets/builtin/builtin_train_sub.lmdb, builtin_train_sub_bicLRx4.lmdb   sub-images and MATLAB-bicubic LR x4
  datasets/builtin/heldout_HR/*.png          held-out photographs: a CROP x CROP centre crop of each
  datasets/builtin/builtin_heldout*, ...      their LR x4 (srflow-prepare-data, whole images)
  datasets/builtin/split.txt                 the file list of both sets
"""
import argparse
import os
import shutil
import subprocess
import sys
from os import path as osp

import cv2
import numpy as np

PACKAGES = ['lomiri-wallpapers-16.04', 'plasma-workspace-wallpapers']
LOMIRI = 'usr/share/backgrounds'
LOMIRI_PHOTOS = [
    'Bridge_by_Sander_Klootwijk', 'Dragonfly_by_Bolly', 'Picture_0B_by_freespace', 'Picture_1A_by_freespace',
    'Wine_by_Jakkub_Mede', 'aitzgorri_by_Aitzol_Berasategi', 'analogpattern_by_Peter_Nerlich',
    'free_by_Peter_Nerlich', 'friends_by_Aitzol_Berasategi', 'greentock_by_Peter_Nerlich',
    'life_by_Aitzol_Berasategi', 'picosdeeuropa_by_Aitzol_Berasategi', 'seeding_by_Clements_Engelhardt',
    'sunset_by_Aitzol_Berasategi', 'umang_by_Abhishek_Mudgal'
]
PLASMA = 'usr/share/wallpapers'
PLASMA_PHOTOS = [
    'BytheWater', 'ColdRipple', 'ColorfulCups', 'DarkestHour', 'EveningGlow', 'FallenLeaf', 'Grey', 'Kite',
    'OneStandsOut', 'Path', 'summer_1am'
]
SKIMAGE_PHOTOS = ['astronaut', 'coffee', 'rocket', 'hubble_deep_field', 'immunohistochemistry', 'chelsea']
HELD_OUT = ['Picture_0B_by_freespace', 'picosdeeuropa_by_Aitzol_Berasategi', 'Dragonfly_by_Bolly', 'ColorfulCups',
            'EveningGlow', 'Path', 'chelsea']
MAX_SIDE = 1600
CROP = 384  # held-out centre crop (HR), a 96 x 96 LR input
SCALE = 4


def run(cmd, cwd=None):
    print('+', ' '.join(cmd), flush=True)
    subprocess.run(cmd, cwd=cwd, check=True)


def fetch_debs(work, update):
    """apt-get download + dpkg -x of PACKAGES into work/extract; returns that folder."""
    debs, extract = osp.join(work, 'debs'), osp.join(work, 'extract')
    os.makedirs(debs, exist_ok=True)
    os.makedirs(extract, exist_ok=True)
    if update:
        run(['apt-get', 'update'])
    run(['apt-get', 'download', *PACKAGES], cwd=debs)
    for name in sorted(os.listdir(debs)):
        if name.endswith('.deb'):
            run(['dpkg', '-x', osp.join(debs, name), extract])
    return extract


def largest_image(folder):
    """The largest image file of a plasma wallpaper's images/ folder (the others are links to it or smaller)."""
    files = [osp.join(folder, f) for f in os.listdir(folder)]
    files = [f for f in files if osp.isfile(f) and not osp.islink(f) and osp.getsize(f) > 0]
    return max(files, key=osp.getsize)


def sources(extract):
    """(name, reader) of every photograph, in a fixed order."""
    items = [(n, osp.join(extract, LOMIRI, f'{n}.jpg')) for n in LOMIRI_PHOTOS]
    items += [(n, largest_image(osp.join(extract, PLASMA, n, 'contents', 'images'))) for n in PLASMA_PHOTOS]
    items += [(n, f'skimage:{n}') for n in SKIMAGE_PHOTOS]
    return items


def read_photo(src):
    if src.startswith('skimage:'):
        from skimage import data
        img = getattr(data, src.split(':', 1)[1])()
        return cv2.cvtColor(np.ascontiguousarray(img[..., :3]), cv2.COLOR_RGB2BGR)
    img = cv2.imread(src, cv2.IMREAD_COLOR)
    if img is None:
        raise SystemExit(f'error: cannot read photo {src}')
    return img


def shrink(img):
    h, w = img.shape[:2]
    factor = MAX_SIDE / max(h, w)
    if factor >= 1:
        return img
    return cv2.resize(img, (round(w * factor), round(h * factor)), interpolation=cv2.INTER_AREA)


def centre_crop(img, size):
    h, w = img.shape[:2]
    size = min(size, h, w) // SCALE * SCALE
    top, left = (h - size) // 2, (w - size) // 2
    return img[top:top + size, left:left + size]


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--output', default='datasets/builtin', help='Folder of the photo set (default: %(default)s)')
    parser.add_argument('--no-apt-update', dest='update', action='store_false', help='Skip apt-get update.')
    parser.add_argument('--n_thread', type=int, default=2, help='srflow-prepare-data workers (default: 2)')
    args = parser.parse_args()

    extract = fetch_debs(osp.join(args.output, 'packages'), args.update)
    train_dir, held_dir = osp.join(args.output, 'train_HR'), osp.join(args.output, 'heldout_HR')
    for folder in (train_dir, held_dir):
        shutil.rmtree(folder, ignore_errors=True)
        os.makedirs(folder)
    lines = []
    for name, src in sources(extract):
        img = shrink(read_photo(src))
        held = name in HELD_OUT
        if held:
            img = centre_crop(img, CROP)
        out = osp.join(held_dir if held else train_dir, f'{name}.png')
        cv2.imwrite(out, img)
        lines.append(f'{"heldout" if held else "train"}\t{name}.png\t{img.shape[1]}x{img.shape[0]}\t{src}')
    with open(osp.join(args.output, 'split.txt'), 'w') as f:
        f.write('\n'.join(lines) + '\n')
    print(f'{sum(line.startswith("train") for line in lines)} training and {len(HELD_OUT)} held-out photos '
          f'({osp.join(args.output, "split.txt")})')

    prepare = [sys.executable, '-m', 'srflow_plugin.tools.prepare_data', '--output', args.output, '--scales',
               str(SCALE), '--n_thread', str(args.n_thread), '--overwrite']
    run(prepare + ['--input', train_dir, '--name', 'builtin_train', '--crop_size', '240', '--step', '240'])
    run(prepare + ['--input', held_dir, '--name', 'builtin_heldout', '--crop_size', '0', '--no_lmdb'])


if __name__ == '__main__':
    main()
