"""Held-out figures of the built-in model (docs/model-card.md): bicubic, the encoder alone (RRDB), SRFlow at tau 0
and 0.8, and the time of one 256 x 256 LR image at x4.

    python scripts/evaluate_builtin.py                       # the built-in model, after scripts/fetch_photos.py
    python scripts/evaluate_builtin.py -c experiments/builtin_srflow_x4/models/net_g_latest.pth \\
        --opt options/cpu/train_builtin_srflow_x4.yml        # a checkpoint of the recipe before it is packed
    python scripts/evaluate_builtin.py --projection 20       # also after LR-consistency back-projection

Torch threads: 2 (--threads), as on the 2-core machine the card's figures come from.
"""
import argparse
import os
import sys
import time
from os import path as osp

import cv2
import torch

import srflow_plugin  # noqa: F401  # isort: skip  (before basicsr: installs the torchvision shim)
from basicsr.archs import build_network

from srflow_plugin.inference.loading import load_srflow
from srflow_plugin.inference.sampling import sample_image
from srflow_plugin.pretrained import resolve_checkpoint
from srflow_plugin.pretrained.evaluate import evaluate_methods, format_rows
from srflow_plugin.utils.checkpoint import load_weights, read_checkpoint
from srflow_plugin.utils.image import list_images, read_image, to_tensor
from srflow_plugin.utils.option_file import read_option_file
from srflow_plugin.utils.sampling import image_generator
from demo_data import photo

HELD_OUT_GT = 'datasets/builtin/builtin_heldout_mod4'
HELD_OUT_LR = 'datasets/builtin/builtin_heldout_mod4_bicLRx4'
RRDB_OPT = 'options/cpu/train_builtin_rrdb_x4.yml'
RRDB_CKPT = 'experiments/builtin_rrdb_x4/models/net_g_latest.pth'


def load_rrdb(path, opt_path):
    net = build_network(dict(read_option_file(opt_path)['network_g']))
    checkpoint = read_checkpoint(path, 'RRDB checkpoint')
    load_weights(net, checkpoint.get('params', checkpoint), path)
    return net.eval()


def read_pairs(gt_dir, lr_dir):
    pairs = []
    for gt_path in list_images(gt_dir):
        name = osp.splitext(osp.basename(gt_path))[0]
        lr_path = osp.join(lr_dir, osp.basename(gt_path))
        if not osp.isfile(lr_path):
            raise FileNotFoundError(f'No LR image {lr_path} for the GT image {gt_path}')
        pairs.append((name, read_image(lr_path), read_image(gt_path)))
    return pairs


@torch.no_grad()
def time_one_sample(net, side=256, temperature=0.8, repeats=3):
    """Seconds (best of ``repeats``) for one sample of a ``side`` x ``side`` LR photo (scikit-image's cat)."""
    lq = cv2.resize(photo('chelsea'), (side, side), interpolation=cv2.INTER_AREA)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        sample_image(net, to_tensor(lq), [temperature], 1, image_generator(0, 'timing'))
        times.append(time.perf_counter() - start)
    return min(times)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('-c', '--checkpoint', default=None, help='SRFlow checkpoint (default: the built-in model)')
    parser.add_argument('--opt', default=None, help='option file of a checkpoint without network_g')
    parser.add_argument('--rrdb', default=RRDB_CKPT, help='stage-1 encoder checkpoint (row left out if missing)')
    parser.add_argument('--gt', default=HELD_OUT_GT)
    parser.add_argument('--lr', default=HELD_OUT_LR)
    parser.add_argument('--num_samples', type=int, default=3)
    parser.add_argument('--projection', type=int, default=0, help='back-projection iterations (0: no such rows)')
    parser.add_argument('--threads', type=int, default=2)
    parser.add_argument('--no_timing', action='store_true')
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    net = load_srflow(resolve_checkpoint(args.checkpoint, args.opt, 'evaluate_builtin'), args.opt).eval()
    rrdb = load_rrdb(args.rrdb, RRDB_OPT) if osp.isfile(args.rrdb) else None
    if rrdb is None:
        print(f'(no encoder row: {args.rrdb} not found; run scripts/train_builtin.sh)')
    pairs = read_pairs(args.gt, args.lr)
    rows, seconds = evaluate_methods(pairs, net, rrdb, num_samples=args.num_samples,
                                     projection_iterations=args.projection)
    print(f'{len(pairs)} held-out photos ({args.gt}), x{net.scale}, crop border 4, {args.num_samples} samples at '
          f'tau > 0, LPIPS AlexNet; torch threads {torch.get_num_threads()}')
    print(format_rows(rows), end='')
    print(f'flow: {seconds:.2f} s per image and sample ({pairs[0][1].shape[1]}x{pairs[0][1].shape[0]} LR)')
    if not args.no_timing:
        print(f'one 256x256 LR image at x{net.scale}, tau 0.8, one sample: {time_one_sample(net):.2f} s '
              f'({os.cpu_count()} CPUs visible, {torch.get_num_threads()} torch threads)')


if __name__ == '__main__':
    sys.exit(main())
