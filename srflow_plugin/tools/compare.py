"""Compare SR models: the flow-versus-GAN table, a side-by-side picture grid and, for flows, metric-vs-temperature
curves.

    srflow-compare --gt datasets/CelebA/CelebA_val_mod4 --lr datasets/CelebA/CelebA_val_mod4_bicLRx4 --out cmp \\
        --model SRGAN=options/flow_vs_gan/train_SRGAN_x4.yml:experiments/SRGAN_FFHQ_x4/models/net_g_latest.pth \\
        --model "SR (no GAN)=results/SRResNet_FFHQ_x4/visualization/CelebA_val" \\
        --model Flow=options/flow_vs_gan/train_Flow_x4.yml:experiments/Flow_FFHQ_x4/models/net_g_latest.pth \\
        --temperatures 0 0.5 0.7 0.8 0.9 1.0 --samples 3

A model is ``NAME=FOLDER`` (its test outputs, named as ``srflow-measure`` reads them: ``<image>*.png``, flows
``<image>_t<T>_s<k>.png``) or ``NAME=OPTIONS.yml[:CHECKPOINT]`` (``network_g`` of the option file, weights from
CHECKPOINT or the file's ``path.pretrain_network_g``): it is then run on every LR image of ``--lr`` and its outputs
are written to ``<out>/outputs/<NAME>/`` (flows: ``--samples`` samples per temperature, seeded per image as
``srflow-sample`` does). Writes to ``--out``:

- ``comparison.md`` and ``comparison.csv``: one row per model, and per temperature for flows: FID, KID, LPIPS, PSNR,
  SSIM, LR-PSNR and the diversity of the samples (flows, >= 2 samples). FID and KID are dataset-level (all samples of
  a row against all GT images, from the same Inception features); the others are means over images (of the means over
  samples). PSNR and SSIM are on RGB. With ``--bootstrap N`` every value gets a spread (``± sd`` over N resamples of
  the images, the same resamples for every row) and ``differences.md`` says which differences between rows exceed
  their spread (:mod:`srflow_plugin.metrics.bootstrap`);
- ``grid.png``: per image (``--grid-images`` of them), LR (nearest), bicubic, each model (flows at
  ``--grid-temperature``, sample 0) and GT, all cut to the same ``--crop`` box;
- ``temperature.png``: FID and LPIPS against the temperature, one curve per flow (when a flow has >= 2).

``--no-lpips`` / ``--no-fid`` leave those columns out (no AlexNet / Inception weights offline; ``--no-fid`` also
leaves KID out).
"""
import argparse
import copy
import math
import os
import sys
from collections import OrderedDict
from os import path as osp

import cv2
import numpy as np
import torch
from basicsr.archs import build_network
from basicsr.utils import imwrite

from srflow_plugin.archs.flow_base import ConditionalFlowNet
from srflow_plugin.inference.grid import bicubic_upscale, make_grid, nearest_upscale
from srflow_plugin.inference.measuring import find_lr, group_samples, measure
from srflow_plugin.inference.sampling import sample_image
from srflow_plugin.metrics.bootstrap import paired_difference
from srflow_plugin.tools.command import HelpFormatter, add_device_argument, console_command, resolve_device
from srflow_plugin.utils.checkpoint import checkpoint_params, load_weights, read_checkpoint, strip_module_prefix
from srflow_plugin.utils.image import images_in, list_images, read_image, to_image, to_tensor
from srflow_plugin.utils.option_file import read_option_file
from srflow_plugin.utils.paths import check_outputs, path_component
from srflow_plugin.utils.sampling import image_generator, output_name, output_names, temperature_of, temperature_tag
from srflow_plugin.utils.table import write_csv, write_text

__all__ = ['ModelSpec', 'parse_model', 'load_network', 'run_model', 'compare', 'format_table', 'picture_grid',
           'plot_curves', 'label', 'difference_table', 'main']

# column -> (markdown header, decimals)
COLUMNS = OrderedDict([
    ('model', ('model', None)),
    ('temperature', ('temperature', None)),
    ('fid', ('FID', 3)),
    ('kid', ('KID', 4)),
    ('lpips', ('LPIPS', 4)),
    ('psnr', ('PSNR', 2)),
    ('ssim', ('SSIM', 4)),
    ('lr_psnr', ('LR-PSNR', 2)),
    ('diversity', ('diversity', 2)),
    ('images', ('images', None)),
    ('samples', ('samples', None)),
])


class ModelSpec:
    """One model to compare: a name and a folder of outputs, or an option file (and checkpoint) to run."""

    def __init__(self, name, folder=None, options=None, checkpoint=None):
        self.name, self.folder, self.options, self.checkpoint = name, folder, options, checkpoint


def parse_model(spec):
    """``NAME=FOLDER`` or ``NAME=OPTIONS.yml[:CHECKPOINT]`` -> :class:`ModelSpec` (files checked to exist)."""
    if '=' not in spec:
        raise ValueError(f'--model {spec!r}: expected NAME=FOLDER or NAME=OPTIONS.yml[:CHECKPOINT]')
    name, target = spec.split('=', 1)
    path_component(name, f'--model {spec!r}: NAME')  # it names the folder outputs/<NAME>
    if osp.isdir(target):
        return ModelSpec(name, folder=target)
    options, _, checkpoint = target.partition(':') if not osp.isfile(target) else (target, '', '')
    if not osp.isfile(options) or not options.endswith(('.yml', '.yaml')):
        raise FileNotFoundError(f'--model {spec!r}: {options} is neither a folder of outputs nor an option file')
    if checkpoint and not osp.isfile(checkpoint):
        raise FileNotFoundError(f'--model {spec!r}: checkpoint {checkpoint} does not exist')
    return ModelSpec(name, options=options, checkpoint=checkpoint or None)


def load_network(options, checkpoint=None, device='cpu'):
    """The ``network_g`` of an option file with the weights of ``checkpoint`` (default: ``path.pretrain_network_g``),
    in eval mode.

    Returns:
        tuple: (network, scale of the option file or None).
    """
    opt = read_option_file(options)
    if not isinstance(opt.get('network_g'), dict):
        raise ValueError(f'Option file {options} has no network_g section')
    checkpoint = checkpoint or (opt.get('path') or {}).get('pretrain_network_g')
    if not checkpoint or not osp.isfile(checkpoint):
        raise FileNotFoundError(f'No checkpoint for {options}: give OPTIONS.yml:CHECKPOINT or set '
                                f'path.pretrain_network_g (got {checkpoint})')
    net = build_network(copy.deepcopy(opt['network_g']))
    state = read_checkpoint(checkpoint)
    params = checkpoint_params(state) if isinstance(state, dict) else None
    if params is None:
        raise ValueError(f'Checkpoint {checkpoint} has neither "params_ema" nor "params"')
    load_weights(net, strip_module_prefix(params), f'Checkpoint {checkpoint} (for network_g of {options})')
    return net.eval().to(device), opt.get('scale')


@torch.no_grad()
def run_model(net, lr_folder, out_dir, scale, temperatures=(0.0, 0.8), samples=3, seed=0):
    """Runs a network on every LR image of ``lr_folder``; writes ``<image>.png`` (SR networks) or
    ``<image>_t<T>_s<k>.png`` (flows: ``samples`` per temperature > 0, one at 0, seeded per image)."""
    device = next(net.parameters()).device
    paths = list_images(lr_folder)
    os.makedirs(out_dir, exist_ok=True)
    for path, name in zip(paths, output_names(paths, scale)):
        lq = to_tensor(read_image(path)).to(device)
        if isinstance(net, ConditionalFlowNet):
            outputs = sample_image(net, lq, temperatures, samples, image_generator(seed, name))
            for (temperature, sample), sr in outputs.items():
                imwrite(to_image(sr), osp.join(out_dir, output_name(name, temperature, sample)))
        else:
            imwrite(to_image(net(lq)), osp.join(out_dir, f'{name}.png'))


def _groups(folder, gt_folder):
    """measure's pairing of a folder's SR files with the GT images: {GT stem: [SR files]}."""
    gt_stems = {osp.splitext(osp.basename(p))[0]: p for p in images_in(gt_folder)}
    return group_samples(images_in(folder, recursive=True), gt_stems)


def _temperatures(folder, gt_folder):
    """The temperatures of a folder's files (sorted floats), or [None] when they carry none."""
    tags = {temperature_of(p, stem) for stem, paths in _groups(folder, gt_folder).items() for p in paths}
    if tags == {None}:
        return [None]
    if None in tags:
        raise ValueError(f'{folder} mixes files with and without a temperature (<image>_t<T>_s<k>.png)')
    return sorted(float(t) for t in tags)


def compare(models, gt_folder, lr_folder, out_dir, scale=4, temperatures=(0.0, 0.8), samples=3, crop_border=0,
            use_lpips=True, use_fid=True, fid_features=None, seed=0, device='cpu', verbose=True, bootstrap=0):
    """Runs (when needed) and measures every model; returns the rows of the table.

    Args:
        models (list[ModelSpec]): The models, in table order.
        gt_folder, lr_folder (str): GT and LR images.
        out_dir (str): Where outputs of run models go (``outputs/<name>``).
        scale (int): Scale factor. Default: 4.
        temperatures (Sequence[float]): Flow temperatures to run. Default: (0, 0.8).
        samples (int): Flow samples per temperature > 0. Default: 3.
        crop_border (int): Border left out of PSNR, SSIM, LPIPS and FID. Default: 0.
        use_lpips, use_fid (bool): Measure LPIPS (and diversity) / FID and KID. Default: True.
        fid_features (callable | None): Feature network of FID and KID (default: BasicSR's Inception).
        seed (int): Seed of the flow samples. Default: 0.
        device (str | torch.device): Where run models and the LPIPS and FID networks go. Default: 'cpu'.
        verbose (bool): Print progress. Default: True.
        bootstrap (int): Resamples of the images for spreads (``<metric>_sd`` columns; the resampled values in
            ``row['bootstrap']``). Default: 0 (none).

    Returns:
        tuple: (rows, folders): table rows and {model name: folder of its outputs}.
    """
    rows, folders = [], OrderedDict()
    for spec in models:
        folder = spec.folder
        if folder is None:
            if verbose:
                print(f'Running {spec.name} ({spec.options}) on {lr_folder} ...', flush=True)
            net, _ = load_network(spec.options, spec.checkpoint, device)
            folder = osp.join(out_dir, 'outputs', spec.name)
            run_model(net, lr_folder, folder, scale, temperatures, samples, seed)
        folders[spec.name] = folder
        for temperature in _temperatures(folder, gt_folder):
            image_rows = measure(folder, gt_folder, lr_folder, scale, crop_border, use_lpips=use_lpips,
                                 verbose=False, temperature=temperature, fid=use_fid, fid_features=fid_features,
                                 kid=use_fid, bootstrap=bootstrap, device=device)
            mean = image_rows[-1]
            row = OrderedDict(model=spec.name, temperature='' if temperature is None else temperature_tag(temperature))
            for key in ('fid', 'kid', 'lpips', 'psnr', 'ssim', 'lr_psnr', 'diversity'):
                if key in mean:
                    row[key] = mean[key]
            if 'bootstrap' in mean:
                row['bootstrap'] = mean['bootstrap']
                for key, values in mean['bootstrap'].items():
                    row[f'{key}_sd'] = float(np.std(values, ddof=1))
            row['images'], row['samples'] = len(image_rows) - 1, mean['samples']
            rows.append(row)
            if verbose:
                print(format_table([row]).splitlines()[-1], flush=True)
    return rows, folders


def format_table(rows):
    """The rows as a markdown table ('-' where a value was not measured)."""
    columns = [key for key in COLUMNS if any(key in row for row in rows)]
    lines = ['| ' + ' | '.join(COLUMNS[k][0] for k in columns) + ' |', '|' + '---|' * len(columns)]
    for row in rows:
        cells = []
        for key in columns:
            value, decimals = row.get(key), COLUMNS[key][1]
            if value is None or value == '':
                cells.append('-')
            elif decimals is None or not isinstance(value, float):
                cells.append(str(value))
            else:
                cells.append('inf' if math.isinf(value) else f'{value:.{decimals}f}')
                if f'{key}_sd' in row:
                    cells[-1] += f' ± {row[key + "_sd"]:.{decimals}f}'
        lines.append('| ' + ' | '.join(cells) + ' |')
    return '\n'.join(lines) + '\n'


def label(row):
    """'SRGAN', 'Flow t=0.8': how the difference table names a row."""
    return row['model'] + (f" t={row['temperature']}" if row.get('temperature', '') != '' else '')


def difference_table(rows, pairs=None, keys=('fid', 'kid', 'lpips', 'psnr')):
    """Differences between rows with their paired bootstrap spread, as a markdown table.

    Args:
        rows (list[dict]): Rows of :func:`compare` with ``bootstrap`` values.
        pairs (list[tuple[str, str]] | None): (A, B) row labels ('SRGAN', 'Flow t=0.8'); default every row against
            the first.
        keys (Sequence[str]): Metrics compared (those measured).

    Returns:
        str: One line per pair and metric: A - B, its sd, the 95 % interval and whether the interval excludes 0.
    """
    by_label = OrderedDict((label(row), row) for row in rows if 'bootstrap' in row)
    if pairs is None:
        labels = list(by_label)
        pairs = [(label, labels[0]) for label in labels[1:]]
    lines = ['| A - B | metric | difference | sd | 95 % interval | exceeds its spread |', '|---|---|---|---|---|---|']
    for a, b in pairs:
        for key in keys:
            if key not in by_label[a]['bootstrap'] or key not in by_label[b]['bootstrap']:
                continue
            d = paired_difference(by_label[a][key], by_label[b][key], by_label[a]['bootstrap'][key],
                                  by_label[b]['bootstrap'][key])
            decimals = COLUMNS[key][1]
            cells = [f'{a} - {b}', COLUMNS[key][0], f"{d['difference']:+.{decimals}f}", f"{d['sd']:.{decimals}f}",
                     f"[{d['low']:+.{decimals}f}, {d['high']:+.{decimals}f}]", 'yes' if d['separated'] else 'no']
            lines.append('| ' + ' | '.join(cells) + ' |')
    return '\n'.join(lines) + '\n'


def _pick(folder, stem, temperature):
    """The output of image ``stem`` in ``folder`` (sample 0 at ``temperature`` for a flow's folder)."""
    names = [f'{stem}.png'] if temperature is None else [output_name(stem, temperature, 0)]
    for name in names:
        path = osp.join(folder, name)
        if osp.isfile(path):
            return read_image(path)
    paths = group_samples(images_in(folder, recursive=True), {stem: stem}).get(stem, [])
    if temperature is not None:
        paths = [p for p in paths if temperature_of(p, stem) == temperature_tag(temperature)]
    if not paths:
        raise FileNotFoundError(f'No output of {stem} in {folder}' +
                                ('' if temperature is None else f' at temperature {temperature_tag(temperature)}'))
    return read_image(sorted(paths)[0])


def picture_grid(folders, gt_folder, lr_folder, scale, images=3, crop=None, temperature=0.8):
    """Rows of LR (nearest), bicubic, each model, GT for the first ``images`` GT images, cut to one box.

    Args:
        folders (dict): model name -> folder of its outputs.
        crop (tuple | None): (y, x, size) in HR pixels; default the centre square of side min(H, W, 128).
        temperature (float): Temperature of the flows' pictures (sample 0).

    Returns:
        ndarray: The grid (HWC uint8 BGR).
    """
    lr_paths = list_images(lr_folder)
    rows = []
    for gt_path in list_images(gt_folder)[:images]:
        stem = osp.splitext(osp.basename(gt_path))[0]
        gt = read_image(gt_path)
        lr_path = find_lr(lr_paths, stem)
        if lr_path is None:
            raise FileNotFoundError(f'No LR image of {stem} in {lr_folder}')
        lq = read_image(lr_path)
        h, w = lq.shape[0] * scale, lq.shape[1] * scale
        if crop is None:
            size = min(h, w, 128)
            y, x = (h - size) // 2, (w - size) // 2
        else:
            y, x, size = crop
        box = (slice(y, y + size), slice(x, x + size))
        tiles = [('LR', nearest_upscale(lq, scale)[box]), ('bicubic', bicubic_upscale(lq, scale)[box])]
        for name, folder in folders.items():
            temps = _temperatures(folder, gt_folder)
            if temps == [None]:
                tiles.append((name, _pick(folder, stem, None)[box]))
            else:
                t = min(temps, key=lambda v: abs(v - temperature))
                tiles.append((f'{name} t={temperature_tag(t)}', _pick(folder, stem, t)[box]))
        tiles.append(('GT', gt[:h, :w][box]))
        rows.append(tiles)
    return make_grid(rows)


def plot_curves(series, path, keys=(('fid', 'FID'), ('lpips', 'LPIPS')), size=(360, 260)):
    """Line plots of metrics against the temperature, drawn with OpenCV (one panel per metric).

    Args:
        series (dict): name -> list of rows with 'temperature' and the metrics.
        path (str): PNG to write.
        keys: (row key, title) of each panel.
        size: (width, height) of a panel.
    """
    colours = [(200, 80, 0), (0, 120, 220), (40, 160, 40), (160, 0, 160), (0, 0, 200)]
    panels = []
    width, height = size
    left, right, top, bottom = 56, 12, 28, 40
    font = cv2.FONT_HERSHEY_SIMPLEX
    for key, title in keys:
        panel = np.full((height, width, 3), 255, np.uint8)
        points = {name: [(float(r['temperature']), r[key]) for r in rows if key in r and r.get(key) is not None]
                  for name, rows in series.items()}
        values = [v for pts in points.values() for _, v in pts if math.isfinite(v)]
        temps = [t for pts in points.values() for t, _ in pts]
        cv2.putText(panel, f'{title} vs temperature', (left, 18), font, 0.45, (0, 0, 0), 1, cv2.LINE_AA)
        if not values:
            cv2.putText(panel, 'not measured', (left, height // 2), font, 0.45, (0, 0, 0), 1, cv2.LINE_AA)
            panels.append(panel)
            continue
        t0, t1 = min(temps), max(temps)
        v0, v1 = min(values), max(values)
        if t1 == t0:
            t1 = t0 + 1
        if v1 == v0:
            v0, v1 = v0 - 0.5 * (abs(v0) or 1), v1 + 0.5 * (abs(v1) or 1)

        def xy(t, v):
            return (int(left + (t - t0) / (t1 - t0) * (width - left - right)),
                    int(height - bottom - (v - v0) / (v1 - v0) * (height - top - bottom)))

        cv2.rectangle(panel, (left, top), (width - right, height - bottom), (0, 0, 0), 1)
        for v in (v0, (v0 + v1) / 2, v1):
            cv2.putText(panel, f'{v:.3g}', (2, xy(t0, v)[1] + 4), font, 0.35, (0, 0, 0), 1, cv2.LINE_AA)
        for t in sorted(set(temps)):
            x = xy(t, v0)[0]
            cv2.line(panel, (x, height - bottom), (x, height - bottom + 4), (0, 0, 0), 1)
            cv2.putText(panel, f'{t:g}', (x - 8, height - bottom + 16), font, 0.35, (0, 0, 0), 1, cv2.LINE_AA)
        cv2.putText(panel, 'temperature', (width // 2 - 30, height - 6), font, 0.4, (0, 0, 0), 1, cv2.LINE_AA)
        for i, (name, pts) in enumerate(points.items()):
            colour = colours[i % len(colours)]
            pts = sorted(p for p in pts if math.isfinite(p[1]))
            for a, b in zip(pts, pts[1:]):
                cv2.line(panel, xy(*a), xy(*b), colour, 2, cv2.LINE_AA)
            for p in pts:
                cv2.circle(panel, xy(*p), 3, colour, -1, cv2.LINE_AA)
            cv2.putText(panel, name, (left + 6, top + 16 + 14 * i), font, 0.4, colour, 1, cv2.LINE_AA)
        panels.append(panel)
    image = np.concatenate(panels, axis=1)
    if not cv2.imwrite(path, image):
        raise OSError(f'Cannot write {path}')
    return image


def write_outputs(rows, folders, out_dir, gt_folder, lr_folder, scale, grid_images=3, crop=None,
                  grid_temperature=0.8, pairs=None):
    """comparison.md / .csv, grid.png, (flows with >= 2 temperatures) temperature.png and (rows with bootstrap
    values) differences.md (``pairs`` as :func:`difference_table`) in ``out_dir``."""
    os.makedirs(out_dir, exist_ok=True)
    table = format_table(rows)
    write_text(table, osp.join(out_dir, 'comparison.md'))
    columns = [c for k in COLUMNS for c in (k, f'{k}_sd') if any(c in r for r in rows)]
    write_csv(rows, osp.join(out_dir, 'comparison.csv'), columns)
    if any('bootstrap' in row for row in rows):
        write_text(difference_table(rows, pairs), osp.join(out_dir, 'differences.md'))
    grid = picture_grid(folders, gt_folder, lr_folder, scale, grid_images, crop, grid_temperature)
    if not cv2.imwrite(osp.join(out_dir, 'grid.png'), grid):
        raise OSError(f'Cannot write {osp.join(out_dir, "grid.png")}')
    series = OrderedDict()
    for row in rows:
        if row['temperature'] != '':
            series.setdefault(row['model'], []).append(row)
    series = OrderedDict((k, v) for k, v in series.items() if len(v) >= 2)
    if series:
        plot_curves(series, osp.join(out_dir, 'temperature.png'))
    return table


def parse_args(argv=None):
    parser = argparse.ArgumentParser(prog='srflow-compare', description=__doc__.split('\n')[0],
                                     formatter_class=HelpFormatter, epilog=__doc__)
    parser.add_argument('--gt', required=True, help='Folder of GT images.')
    parser.add_argument('--lr', required=True, help='Folder of LR images (<stem>.png or <stem>x<scale>.png).')
    parser.add_argument('--out', required=True, help='Output folder.')
    parser.add_argument('--model', action='append', required=True, help='NAME=FOLDER or NAME=OPTIONS.yml[:CKPT]')
    parser.add_argument('--scale', type=int, default=4, help='Scale factor. Default: 4')
    parser.add_argument('--temperatures', type=float, nargs='+', default=[0.0, 0.8],
                        help='Flow temperatures to run. Default: 0 0.8')
    parser.add_argument('--samples', type=int, default=3, help='Flow samples per temperature. Default: 3')
    parser.add_argument('--crop_border', type=int, default=0, help='Border left out of the metrics. Default: 0')
    parser.add_argument('--no-lpips', action='store_true', help='No LPIPS and diversity (no AlexNet weights).')
    parser.add_argument('--no-fid', action='store_true', help='No FID (no Inception weights).')
    parser.add_argument('--grid-images', type=int, default=3, help='Images in the grid. Default: 3')
    parser.add_argument('--grid-temperature', type=float, default=0.8, help='Flow temperature in the grid.')
    parser.add_argument('--crop', type=int, nargs=3, default=None, metavar=('Y', 'X', 'SIZE'),
                        help='Grid box in HR pixels. Default: the centre square of side min(H, W, 128)')
    parser.add_argument('--seed', type=int, default=0, help='Seed of the flow samples. Default: 0')
    add_device_argument(parser, 'the run models and the LPIPS and FID networks')
    parser.add_argument('--bootstrap', type=int, default=0, help='Resamples of the images for the spreads of the '
                        'metrics and differences.md (e.g. 200). Default: 0 (none)')
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    models = [parse_model(spec) for spec in args.model]
    inputs = {'--gt': args.gt, '--lr': args.lr}
    inputs.update({f'--model {m.name}': [p for p in (m.folder, m.options, m.checkpoint) if p] for m in models})
    check_outputs({'--out': args.out}, inputs)
    rows, folders = compare(models, args.gt, args.lr, args.out, args.scale, args.temperatures, args.samples,
                            args.crop_border, not args.no_lpips, not args.no_fid, seed=args.seed,
                            device=resolve_device(args.device), bootstrap=args.bootstrap)
    table = write_outputs(rows, folders, args.out, args.gt, args.lr, args.scale, args.grid_images, args.crop,
                          args.grid_temperature)
    print(table)
    print(f'Written to {args.out}: comparison.md, comparison.csv, grid.png'
          + (', differences.md' if args.bootstrap else '')
          + (', temperature.png' if osp.isfile(osp.join(args.out, 'temperature.png')) else ''))
    return rows


cli = console_command(main, 'srflow-compare')

if __name__ == '__main__':
    sys.exit(cli())
