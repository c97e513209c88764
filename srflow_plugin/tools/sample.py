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
change the results either as long as ``--tile_overlap >= needed_overlap(net)`` (srflow_plugin.tools.tiling); a
smaller overlap trades exactness at the tile seams for speed. Grids go to ``<out>_grids`` by default (outside
``<out>``, where srflow-measure would take them for samples). Names and seeds follow
:mod:`srflow_plugin.utils.sampling`, as validation's do: the same seed gives the same picture in both.

``--lr_consistency N`` writes every sample after N back-projection steps onto its LR input
(:mod:`srflow_plugin.utils.lr_consistency`: the HR images whose MATLAB-bicubic downscale is the LR image) and prints
the LR-PSNR before and after; ``srflow-measure --lr_consistency N`` measures unprojected samples both ways.

Checked before any sampling: the temperatures are finite, every input image can be read (and is at least 2x2), the
output folders neither are, contain nor lie inside the input or the GT, nor inside each other
(:mod:`srflow_plugin.utils.paths`), the largest image's decoding fits in memory (a lower bound against what the
device has free: else the error names a ``--tile`` that fits; :func:`~srflow_plugin.tools.tiling.check_memory`),
every GT of a grid exists and fits, the output folders can be written. Samples
are written as they are decoded, a bounded batch at a time (:func:`iter_samples`): memory does not grow with
``--num_samples``. A sample with non-finite pixels (too high a temperature for the model) is still
written (NaN as black), but counted, warned about per image and temperature, listed in ``<out>/nonfinite.tsv``
(``srflow-measure`` leaves those files out) and summed up at the end.
"""
import argparse
import math
import sys
from os import path as osp

import torch
from tqdm import tqdm

import srflow_plugin  # noqa: F401  (before basicsr: installs the torchvision shim)
from srflow_plugin.pretrained import resolve_checkpoint
from srflow_plugin.tools.command import HelpFormatter, add_device_argument, console_command, resolve_device
from srflow_plugin.tools.grid import bicubic_upscale, make_grid, nearest_upscale
from srflow_plugin.tools.tiling import check_memory, decode_tiled, tile_boxes
from srflow_plugin.utils.checkpoint import load_srflow
from srflow_plugin.utils.paths import check_outputs
from srflow_plugin.utils.image import (IMG_EXTENSIONS, NONFINITE_REPORT, check_writable, crop_gt_to_sr, list_images,
                                       nonfinite_pixels, read_image, record_nonfinite, to_image, to_tensor, write_image)
from srflow_plugin.utils.safe_sampling import decode_safely, repair_summary
from srflow_plugin.utils.lr_consistency import project_samples
from srflow_plugin.utils.sampling import (draw_noise, image_generator, output_name, output_names, sample_keys, scaled,
                                          temperature_tag)

__all__ = ['main', 'cli', 'sample_image', 'sample_grid', 'find_gt']

MIN_LR_SIZE = 2  # the flow's first squeeze needs 2x2 LR pixels


# outputs decoded together (their latents and float images in memory at once): at most this many bytes of them, and
# at least one output; a 40x40 LR image at x4 gives batches of 64, a 1500x1500 one single outputs
SAMPLE_BATCH_BYTES = 256 * 2**20
MAX_SAMPLE_BATCH = 64


def sample_batch_size(lq_shape, scale):
    """How many outputs :func:`iter_samples` decodes at once for an LR image of shape [1, C, h, w]."""
    out_bytes = 2 * 4 * lq_shape[-3] * lq_shape[-2] * lq_shape[-1] * scale**2  # its latents and its float image
    return max(1, min(MAX_SAMPLE_BATCH, SAMPLE_BATCH_BYTES // out_bytes))


@torch.no_grad()
def iter_samples(net, lq, temperatures, num_samples, generator, tile=None, tile_overlap=0, safe=False, repairs=None):
    """Yields ``((temperature, sample), HR image)`` for every output of :func:`sample_image`, a bounded batch at a
    time (:func:`sample_batch_size`): memory does not grow with ``num_samples``. Sample ``k`` is the ``k``-th draw
    of ``generator`` at every temperature, as in :func:`sample_image`; outputs come sample by sample. ``safe`` and
    ``repairs``: as :func:`sample_image`."""
    device = next(net.parameters()).device
    keys = sample_keys(temperatures, num_samples)
    per_batch = sample_batch_size(lq.shape, net.scale)
    cond = None if tile else net.condition(lq.to(device))
    ordered = sorted(keys, key=lambda key: (key[1], key[0]))  # sample by sample
    noise = {}  # sample -> its unit latents, while a batch needs them
    for start in range(0, len(ordered), per_batch):
        batch = ordered[start:start + per_batch]
        for _, s in batch:
            if s not in noise:  # draws come in order: sample s is the s-th draw of the generator
                noise[s] = draw_noise(net, *lq.shape[-2:], 1, generator)[0]
        latents = [scaled(noise[s], t) for t, s in batch]
        if tile:
            decode = lambda lat: decode_tiled(net, lq, [lat], tile, tile_overlap)[0]  # noqa: E731
            outputs = decode_tiled(net, lq, latents, tile, tile_overlap)
        else:
            decode = lambda lat: net.decode(cond=cond, latents=[z.to(device) for z in lat]).cpu()  # noqa: E731
            outputs = [decode(lat) for lat in latents]
        if safe:
            for index, (key, lat) in enumerate(zip(batch, latents)):
                outputs[index], repair = decode_safely(decode, lat, outputs[index])
                if repair.pixels and repairs is not None:
                    repairs[key] = repair
        done = max(s for _, s in batch)
        noise = {s: z for s, z in noise.items() if s >= done}
        yield from zip(batch, outputs)


@torch.no_grad()
def sample_image(net, lq, temperatures, num_samples, generator, tile=None, tile_overlap=0, safe=False, repairs=None):
    """Draws ``num_samples`` super-resolutions of one LR image at every temperature > 0, and one at temperature 0
    (all its latents are zero, so every sample would be the same picture).

    Sample ``k`` decodes ``T * z_k`` at temperature ``T``, where ``z_k`` is the ``k``-th unit-variance draw of
    ``generator`` (:mod:`srflow_plugin.utils.sampling`, as validation draws them): the samples of all temperatures
    share their noise, and a sample does not depend on which other temperatures are asked for. The latents are
    drawn for the whole image (so tiled and untiled sampling give the same pictures when the overlap covers the
    receptive field); the LR image is encoded once (once per tile and batch when tiled) and shared by all samples.
    ``srflow-sample`` streams the same outputs to disk with :func:`iter_samples` instead of keeping them all.

    Args:
        net (SRFlowNet): The network.
        lq (Tensor): One LR image [1, C, h, w] in [0, 1] (any device).
        temperatures (Sequence[float]): Standard deviations of the latents.
        num_samples (int): Samples per temperature.
        generator (torch.Generator): A CPU generator (:func:`~srflow_plugin.utils.sampling.image_generator`).
        tile (int | None): Tile core size in LR pixels (even) for tiled decoding; None decodes the whole image.
        tile_overlap (int): Context around each tile in LR pixels (even).
        safe (bool): Repair samples with non-finite or far out-of-range pixels (:mod:`srflow_plugin.utils.
            safe_sampling`); the others are returned as drawn.
        repairs (dict | None): Receives (temperature, sample) -> :class:`~srflow_plugin.utils.safe_sampling.Repair`
            for every sample that was repaired.

    Returns:
        dict[(float, int), Tensor]: (temperature, sample) -> HR image [1, C, H, W] on the CPU (not clamped);
        temperature 0 has the one key (0.0, 0), in the order of :func:`~srflow_plugin.utils.sampling.sample_keys`.
    """
    outputs = dict(iter_samples(net, lq, temperatures, num_samples, generator, tile, tile_overlap, safe, repairs))
    return {key: outputs[key] for key in sample_keys(temperatures, num_samples)}


def mode_image(net, lq, tile=None, tile_overlap=0):
    """The tau = 0 image (all latents zero)."""
    return sample_image(net, lq, [0.0], 1, None, tile, tile_overlap)[(0.0, 0)]


def sample_grid(lq_img, samples, mode, scale, gt_img=None):
    """The picture grid of one image: a reference row [LR (nearest), bicubic, tau = 0, GT] and one row per
    temperature > 0 with its samples.

    Args:
        lq_img (ndarray): LR image, uint8 BGR.
        samples (dict[(float, int), ndarray]): (temperature, sample) -> uint8 BGR SR image.
        mode (ndarray): The tau = 0 image, uint8 BGR.
        scale (int): SR scale.
        gt_img (ndarray | None): GT image, uint8 BGR.

    Returns:
        ndarray: the grid (see ``srflow_plugin.tools.grid``).
    """
    reference = [('LR (nearest)', nearest_upscale(lq_img, scale)), ('bicubic', bicubic_upscale(lq_img, scale)),
                 ('SRFlow tau=0', mode)]
    if gt_img is not None:
        reference.append(('GT', gt_img))
    rows = [reference]
    for t in sorted({t for t, _ in samples if t > 0}):
        rows.append([(f'tau={t:g} #{s}', samples[(tt, s)]) for tt, s in sorted(samples) if tt == t])
    return make_grid(rows)


def find_gt(gt, name, sr_shape, scale):
    """The GT image of ``name`` from a file or folder, cropped to the SR size when larger by < scale."""
    if osp.isfile(gt):
        path = gt
    else:
        candidates = [osp.join(gt, name + ext) for ext in IMG_EXTENSIONS + tuple(e.upper() for e in IMG_EXTENSIONS)]
        found = [p for p in candidates if osp.isfile(p)]
        if not found:
            raise FileNotFoundError(f'No GT image for {name} in {gt} (looked for {name}.png, .jpg, ...).')
        path = found[0]
    return crop_gt_to_sr(read_image(path), sr_shape[:2], scale, f'GT {path}', 'the SR image')


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
                        '(even); exact when >= the receptive radius (srflow_plugin.tools.tiling.needed_overlap)')
    parser.add_argument('--grid', action='store_true', help='also write a labelled picture grid per image')
    parser.add_argument('--gt', default=None, help='GT image or folder (GT column of the grids)')
    parser.add_argument('--grid_dir', default=None, help='grid folder; None: <output>_grids')
    parser.add_argument('--safe_sampling', action=argparse.BooleanOptionalAction, default=None,
                        help='repair samples with non-finite or far out-of-range pixels by redrawing the latents of '
                        'that region at a lower temperature (srflow_plugin.utils.safe_sampling); off: samples as '
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


def main(argv=None):
    args = parse_args(argv)
    images = list_images(args.input)
    # a broken input is an error before anything is computed or written
    shapes = [read_image(path, min_size=MIN_LR_SIZE).shape for path in images]
    grid_dir = (args.grid_dir or osp.abspath(args.output) + '_grids') if args.grid else None
    check_outputs({'-o': args.output, '--grid_dir': grid_dir}, {'-i': args.input, '--gt': args.gt})
    checkpoint = resolve_checkpoint(args.checkpoint, args.opt, 'srflow-sample')
    if args.safe_sampling is None:
        args.safe_sampling = args.checkpoint is None
        if args.safe_sampling:
            print('srflow-sample: safe sampling is on for the built-in model (--no-safe_sampling: samples as drawn)')
    net = load_srflow(checkpoint, args.opt, resolve_device(args.device))
    names = output_names(images, net.scale)
    largest = max(range(len(images)), key=lambda i: shapes[i][0] * shapes[i][1])
    check_memory(net, (1, shapes[largest][2]) + shapes[largest][:2], args.tile, args.tile_overlap, images[largest])
    if args.gt:  # a missing or misfitting GT is an error now, not after the sampling
        for (lq_h, lq_w, _), name in zip(shapes, names):
            find_gt(args.gt, name, (lq_h * net.scale, lq_w * net.scale), net.scale)
    for folder in [args.output] + ([grid_dir] if args.grid else []):
        check_writable(folder)
    written, nonfinite, repairs = [], {}, []
    for path, name in tqdm(list(zip(images, names)), unit='image', desc='SRFlow sampling'):
        lq_img = read_image(path, min_size=MIN_LR_SIZE)
        lq = to_tensor(lq_img)
        sample_imgs = {}  # 8-bit samples of this image, kept for its grid only
        image_repairs = {}
        lr_psnrs = []  # (before, after) of every sample, with --lr_consistency
        for (t, s), sr in iter_samples(net, lq, args.temperatures, args.num_samples, image_generator(args.seed, name),
                                       args.tile, args.tile_overlap, args.safe_sampling, image_repairs):
            raw = sr  # non-finite pixels are counted before the projection (which would spread them)
            if args.lr_consistency:
                projected, before, after = project_samples({(t, s): sr}, lq, net.scale, args.lr_consistency)
                sr = projected[t, s]
                lr_psnrs.append((before, after))
            img = to_image(sr)
            if args.grid:
                sample_imgs[t, s] = img
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
        for t in args.temperatures:
            if (name, float(t)) in nonfinite:
                tqdm.write(f'Warning: {name} at temperature {t:g}: {nonfinite[name, float(t)]} non-finite pixels '
                           f'(written as black; listed in {osp.join(args.output, NONFINITE_REPORT)})', file=sys.stderr)
        if args.grid:
            mode = sample_imgs.get((0.0, 0))
            if mode is None:
                mode = to_image(mode_image(net, lq, args.tile, args.tile_overlap))
            gt_img = find_gt(args.gt, name, mode.shape, net.scale) if args.gt else None
            write_image(sample_grid(lq_img, sample_imgs, mode, net.scale, gt_img),
                        osp.join(grid_dir, f'{name}_grid.png'))
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
    return written


cli = console_command(main, 'srflow-sample')

if __name__ == '__main__':
    sys.exit(cli())
