"""Sample super-resolutions of an image or a folder with a trained SRFlowNet.

    srflow-sample -i <image or folder> -o <out folder> [-c <checkpoint.pth> [--opt train.yml]]
        [--temperatures 0 0.8 0.9] [--num_samples 3] [--seed 0] [--device auto|cpu|cuda]
        [--tile 128 --tile_overlap 32] [--grid [--gt <folder or image>] [--grid_dir <folder>]] [--lr_consistency N]

Outputs ``<out>/<image>_t<temperature>_s<sample>.png`` (sample counted from 0), where ``<image>`` is the input's
file stem without a DIV2K-style ``x<scale>`` suffix (``0801x4.png`` -> ``0801``; only after a digit, so ``box4.png``
stays ``box4``), so that ``srflow-measure`` pairs the samples with the GT ``0801.png``. Temperature 0 gives
one sample only (``<image>_t0_s0.png``): all its samples would be the same picture. Two inputs that would get the
same ``<image>`` (``0801.png`` and ``0801x4.png``, ``a.png`` and ``a.jpg``) are an error naming both.
Reproducible: each image has its own random generator seeded from ``--seed`` and the image name, so results do not
depend on which other images are in the folder. The latents are drawn for the whole image, so ``--tile`` does not
change the results either as long as ``--tile_overlap >= needed_overlap(net)`` (srflow_plugin.inference.tiling); a
smaller overlap trades exactness at the tile seams for speed. Grids go to ``<out>_grids`` by default (outside
``<out>``, where srflow-measure would take them for samples). Names and seeds follow
:mod:`srflow_plugin.utils.sampling`, as validation's do: the same seed gives the same picture in both.

``--lr_consistency N`` writes every sample after N back-projection steps onto its LR input
(:mod:`srflow_plugin.inference.lr_consistency`: the HR images whose MATLAB-bicubic downscale is the LR image) and
prints the LR-PSNR before and after; ``srflow-measure --lr_consistency N`` measures unprojected samples both ways.

Checked before any sampling: the temperatures are finite, every input image can be read (and is at least 2x2), the
output folders neither are, contain nor lie inside the input or the GT, nor inside each other
(:mod:`srflow_plugin.utils.paths`), the largest image's decoding fits in memory (a lower bound against what the
device has free: else the error names a ``--tile`` that fits;
:func:`~srflow_plugin.inference.tiling.check_memory`), every GT of a grid exists and fits, the output folders can be
written. Samples are written as they are decoded, a bounded batch at a time
(:func:`~srflow_plugin.inference.sampling.iter_samples`): memory does not grow with ``--num_samples``. A sample
with non-finite pixels (too high a temperature for the model) is still written (NaN as black), but counted, warned
about per image and temperature, listed in ``<out>/nonfinite.tsv`` (``srflow-measure`` leaves those files out) and
summed up at the end.
"""
import argparse
import math
import sys
from os import path as osp

from tqdm import tqdm

from srflow_plugin.inference.loading import load_srflow
from srflow_plugin.inference.lr_consistency import project_samples
from srflow_plugin.inference.safe_sampling import repair_summary
from srflow_plugin.inference.sampling import MIN_LR_SIZE, find_gt, iter_samples, mode_image, sample_grid
from srflow_plugin.inference.tiling import check_memory, tile_boxes
from srflow_plugin.pretrained import resolve_checkpoint
from srflow_plugin.tools.command import HelpFormatter, add_device_argument, console_command, resolve_device
from srflow_plugin.utils.image import (NONFINITE_REPORT, check_writable, list_images, nonfinite_pixels, read_image,
                                       record_nonfinite, to_image, to_tensor, write_image)
from srflow_plugin.utils.paths import check_outputs
from srflow_plugin.utils.sampling import image_generator, output_name, output_names, temperature_tag

__all__ = ['main', 'cli']


def parse_args(argv=None):
    parser = argparse.ArgumentParser(prog='srflow-sample', description=__doc__, formatter_class=HelpFormatter)
    parser.add_argument('-i', '--input', required=True, help='LR image or folder of LR images')
    parser.add_argument('-c', '--checkpoint', default=None, help='SRFlowNet checkpoint (BasicSR .pth); default: the '
                        'built-in x4 model (docs/model-card.md)')
    parser.add_argument('-o', '--output', required=True, help='output folder')
    parser.add_argument('--opt', default=None, help='option yml whose network_g builds the network (needed when '
                        'the checkpoint has no network_g key)')
    parser.add_argument('--temperatures', type=float, nargs='+', default=[0.0, 0.8, 0.9],
                        help='standard deviations tau of the latents, finite and >= 0')
    parser.add_argument('--num_samples', type=int, default=3, help='samples per temperature > 0 (temperature 0 '
                        'gives one)')
    parser.add_argument('--seed', type=int, default=0, help='with the image name, seeds its samples (as val.seed)')
    add_device_argument(parser)
    parser.add_argument('--tile', type=int, default=None, help='tile core size in LR pixels (even)')
    parser.add_argument('--tile_overlap', type=int, default=32, help='context around each tile in LR pixels '
                        '(even); exact when >= the receptive radius (srflow_plugin.inference.tiling.needed_overlap)')
    parser.add_argument('--grid', action='store_true', help='also write a labelled picture grid per image')
    parser.add_argument('--gt', default=None, help='GT image or folder (GT column of the grids)')
    parser.add_argument('--grid_dir', default=None, help='grid folder; None: <output>_grids')
    parser.add_argument('--safe_sampling', action=argparse.BooleanOptionalAction, default=None,
                        help='repair samples with non-finite or far out-of-range pixels by redrawing the latents of '
                        'that region at a lower temperature (srflow_plugin.inference.safe_sampling); off: samples as '
                        'drawn. Default: on with the built-in model (its samples of photos that were not '
                        'bicubic-downscaled can hold black patches at tau 0.8), off with -c')
    parser.add_argument('--lr_consistency', type=int, default=0, metavar='N', help='back-projection steps onto the '
                        'LR input for every sample (e.g. 2); 0: off')
    args = parser.parse_args(argv)
    if args.num_samples < 1:
        parser.error(f'--num_samples must be >= 1, got {args.num_samples}')
    if any(not math.isfinite(t) or t < 0 for t in args.temperatures):
        parser.error(f'--temperatures must be finite and >= 0, got {args.temperatures}')
    tags = [temperature_tag(t) for t in args.temperatures]
    if len(set(tags)) < len(tags):
        parser.error(f'--temperatures repeat a temperature (as written in file names: {" ".join(tags)})')
    if args.lr_consistency < 0:
        parser.error(f'--lr_consistency must be >= 0, got {args.lr_consistency}')
    if args.gt and not args.grid:
        parser.error('--gt is only used by the picture grids: add --grid')
    if args.tile is not None:
        try:
            tile_boxes(2, 2, args.tile, args.tile_overlap)
        except ValueError as error:
            parser.error(f'--tile/--tile_overlap: {error}')
    return args


def _load_network(args):
    """The network of ``-c`` (else the built-in model) on ``--device``; ``--safe_sampling`` defaults to on for the
    built-in model, saying so."""
    checkpoint = resolve_checkpoint(args.checkpoint, args.opt, 'srflow-sample')
    if args.safe_sampling is None:
        args.safe_sampling = args.checkpoint is None
        if args.safe_sampling:
            print('srflow-sample: safe sampling is on for the built-in model (--no-safe_sampling: samples as drawn)')
    return load_srflow(checkpoint, args.opt, resolve_device(args.device))


def _check_before_sampling(args, net, images, shapes, names, grid_dir):
    """What can fail is checked before anything is sampled: the memory of the largest image, every GT of a grid, the
    output folders."""
    largest = max(range(len(images)), key=lambda i: shapes[i][0] * shapes[i][1])
    check_memory(net, (1, shapes[largest][2]) + shapes[largest][:2], args.tile, args.tile_overlap, images[largest])
    if args.gt:  # a missing or misfitting GT is an error now, not after the sampling
        for (lq_h, lq_w, _), name in zip(shapes, names):
            find_gt(args.gt, name, (lq_h * net.scale, lq_w * net.scale), net.scale)
    for folder in [args.output] + ([grid_dir] if args.grid else []):
        check_writable(folder)


def _write_samples(args, net, name, lq, grid_samples, nonfinite, repairs):
    """Writes every sample of one LR image as it is decoded (back-projected with ``--lr_consistency``), keeping the
    8-bit ones a grid needs in ``grid_samples`` and counting non-finite pixels into ``nonfinite``; returns the
    paths written."""
    image_repairs = {}
    lr_psnrs = []  # (before, after) of every sample, with --lr_consistency
    written = []
    for (t, s), sr in iter_samples(net, lq, args.temperatures, args.num_samples, image_generator(args.seed, name),
                                   args.tile, args.tile_overlap, args.safe_sampling, image_repairs):
        raw = sr  # non-finite pixels are counted before the projection (which would spread them)
        if args.lr_consistency:
            projected, before, after = project_samples({(t, s): sr}, lq, net.scale, args.lr_consistency)
            sr = projected[t, s]
            lr_psnrs.append((before, after))
        img = to_image(sr)
        if args.grid:
            grid_samples[t, s] = img
        out = osp.join(args.output, output_name(name, t, s))
        write_image(img, out)
        bad = nonfinite_pixels(raw)
        record_nonfinite(out, bad)
        if bad:
            nonfinite[name, t] = nonfinite.get((name, t), 0) + bad
        written.append(out)
    repairs += image_repairs.values()
    if lr_psnrs:
        before, after = (sum(v) / len(v) for v in zip(*lr_psnrs))
        tqdm.write(f'{name}: LR-PSNR {before:.2f} dB without, {after:.2f} dB with {args.lr_consistency} '
                   'back-projection step(s)')
    return written


def _warn_nonfinite(args, name, nonfinite):
    for t in args.temperatures:
        if (name, float(t)) in nonfinite:
            tqdm.write(f'Warning: {name} at temperature {t:g}: {nonfinite[name, float(t)]} non-finite pixels '
                       f'(written as black; listed in {osp.join(args.output, NONFINITE_REPORT)})', file=sys.stderr)


def _write_grid(args, net, name, lq_img, lq, grid_samples, grid_dir):
    mode = grid_samples.get((0.0, 0))
    if mode is None:
        mode = to_image(mode_image(net, lq, args.tile, args.tile_overlap))
    gt_img = find_gt(args.gt, name, mode.shape, net.scale) if args.gt else None
    write_image(sample_grid(lq_img, grid_samples, mode, net.scale, gt_img), osp.join(grid_dir, f'{name}_grid.png'))


def _print_summary(args, written, images, grid_dir, nonfinite, repairs):
    print(f'Wrote {len(written)} samples of {len(images)} image(s) to {args.output}'
          + (f' and grids to {grid_dir}' if args.grid else ''))
    if args.safe_sampling:
        print(repair_summary(repairs))
    if nonfinite:
        per_t = {}
        for (_, t), bad in nonfinite.items():
            per_t[t] = per_t.get(t, 0) + bad
        print('Non-finite pixels per temperature: ' + ', '.join(f'{t:g}: {n}' for t, n in sorted(per_t.items()))
              + f'; those samples are listed in {osp.join(args.output, NONFINITE_REPORT)}', file=sys.stderr)


def main(argv=None):
    args = parse_args(argv)
    images = list_images(args.input)
    # a broken input is an error before anything is computed or written
    shapes = [read_image(path, min_size=MIN_LR_SIZE).shape for path in images]
    grid_dir = (args.grid_dir or osp.abspath(args.output) + '_grids') if args.grid else None
    check_outputs({'-o': args.output, '--grid_dir': grid_dir}, {'-i': args.input, '--gt': args.gt})
    net = _load_network(args)
    names = output_names(images, net.scale)
    _check_before_sampling(args, net, images, shapes, names, grid_dir)
    written, nonfinite, repairs = [], {}, []
    for path, name in tqdm(list(zip(images, names)), unit='image', desc='SRFlow sampling'):
        lq_img = read_image(path, min_size=MIN_LR_SIZE)
        lq = to_tensor(lq_img)
        grid_samples = {}  # 8-bit samples of this image, kept for its grid only
        written += _write_samples(args, net, name, lq, grid_samples, nonfinite, repairs)
        _warn_nonfinite(args, name, nonfinite)
        if args.grid:
            _write_grid(args, net, name, lq_img, lq, grid_samples, grid_dir)
    _print_summary(args, written, images, grid_dir, nonfinite, repairs)
    return written


cli = console_command(main, 'srflow-sample')

if __name__ == '__main__':
    sys.exit(cli())
