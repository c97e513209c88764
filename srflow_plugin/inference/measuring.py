"""Measuring SR results: PSNR, SSIM, LPIPS, LR-PSNR, the NTIRE diversity score, FID and KID (``srflow-measure``
runs :func:`measure` over folders; :func:`measure_image` measures the samples of one image).

Naming rule. Every GT image ``<stem>.<ext>`` owns the SR images (searched recursively in --sr) whose
file stem is ``<stem>`` or starts with ``<stem>_``: ``0801.png``, ``0801_sample03.png``,
``0801/0801_t0.9_s3.png`` all belong to ``0801``. When several GT stems match, the longest wins. An SR
file that matches no GT image is an error; GT images without SR images are skipped (and listed).
The LR input of ``<stem>`` is ``<stem>.<ext>`` or ``<stem>x<scale>.<ext>`` (DIV2K naming) in --lr.
Image files are recognised by their extension in any case (``.png``, ``.Png``, ``.PNG``, ...).

Temperatures. An SR file whose stem ends in ``_t<T>_s<k>`` (the names of ``srflow-sample`` and of validation,
``0801_t0.9_s3``, ``0801_5000_t0.9_s3``; :mod:`srflow_plugin.utils.sampling`) carries the temperature T.
``--temperature T`` measures only the files of that temperature (tagged as the sampler writes it:
``--temperature 0.90`` finds ``_t0.9_``). Without it, an image whose SR files carry more than one temperature is
an error naming the image and the temperatures: the metrics and the diversity of one image must come from samples
of one temperature. Files without a temperature tag are samples as they are.

Per image, every metric is the mean over its SR samples; the diversity score needs >= 2 samples.
The mean row averages the per-image values (an ``inf`` PSNR of identical images makes the mean inf).
``--fid`` adds FID to the mean row only: it is dataset-level, between all measured SR samples and the set of GT
images (each counted once), with BasicSR's Inception-v3 (:mod:`srflow_plugin.metrics.fid` says where its weights go).
``--lr_consistency N`` also measures every sample after N back-projection steps onto its LR input
(:mod:`srflow_plugin.inference.lr_consistency`: the HR images whose MATLAB-bicubic downscale is the LR image), in the
columns PSNR / SSIM / LPIPS / LR-PSNR "(projected)", beside the unprojected ones.
``--kid`` adds KID (:mod:`srflow_plugin.metrics.kid`: unbiased, so meaningful for small sets) from the same features.
If the GT is larger than the SR output by less than the scale (GT sizes that are not a multiple of
the scale), the GT is cropped at the bottom/right to the SR size, as NTIRE does.

Non-finite samples. Files that ``srflow-sample`` or validation listed in a ``nonfinite.tsv`` beside them (their
pixels were NaN or infinite, written as 0 or 255) are not results: they are left out of every metric, counted per
image in the ``nonfinite`` column, and named in a warning.
"""
import math
import sys
from collections import defaultdict
from os import path as osp
from typing import Callable, Dict, Iterable, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch
from basicsr.metrics.psnr_ssim import calculate_psnr, calculate_ssim

from srflow_plugin.inference.lr_consistency import back_project_image
from srflow_plugin.metrics import (InceptionFeatures, calculate_lr_psnr, diversity_score, get_lpips_model,
                                   kernel_distance, lpips_distance)
from srflow_plugin.metrics.bootstrap import bootstrap_values
from srflow_plugin.metrics.fid import frechet_distance
from srflow_plugin.utils.image import crop_gt_to_sr, images_in, read_image, read_nonfinite, to_tensor
from srflow_plugin.utils.sampling import run_tag_of, temperature_of, temperature_tag
from srflow_plugin.utils.table import write_csv as write_table

__all__ = ['COLUMNS', 'PROJECTED_KEYS', 'group_samples', 'select_temperature', 'find_lr', 'measure_image', 'mean_row',
           'measure', 'write_csv', 'format_markdown']

# column -> (markdown header, decimals in the markdown table)
COLUMNS = {
    'image': ('image', None),
    'samples': ('samples', None),
    'nonfinite': ('non-finite samples (left out)', None),
    'psnr': ('PSNR', 2),
    'ssim': ('SSIM', 4),
    'psnr_y': ('PSNR-Y', 2),
    'ssim_y': ('SSIM-Y', 4),
    'lpips': ('LPIPS', 4),
    'lr_psnr': ('LR-PSNR (LR input)', 2),
    'lr_psnr_gt': ('LR-PSNR (NTIRE, downscaled GT)', 2),
    'diversity': ('diversity', 2),
    'psnr_projected': ('PSNR (projected)', 2),
    'ssim_projected': ('SSIM (projected)', 4),
    'lpips_projected': ('LPIPS (projected)', 4),
    'lr_psnr_projected': ('LR-PSNR (projected)', 2),
    'fid': ('FID (all samples)', 3),
    'kid': ('KID (all samples)', 4),
}


def _stem(path):
    return osp.splitext(osp.basename(path))[0]


def group_samples(sr_paths: Sequence[str], gt_stems: Iterable[str]) -> Dict[str, List[str]]:
    """Assign SR files to GT images by the naming rule (stem equal to, or starting with, ``<gt stem>_``).

    Args:
        sr_paths (list[str]): SR image files.
        gt_stems (iterable[str]): GT file stems.

    Returns:
        dict[str, list[str]]: GT stem -> its SR files, sorted; only GT stems with SR files.
    """
    gt_stems = set(gt_stems)
    groups, unmatched = defaultdict(list), []
    for path in sr_paths:
        stem = _stem(path)
        # candidates from the longest: the whole stem, then every prefix ending before a '_'
        cuts = [len(stem)] + [i for i in range(len(stem) - 1, 0, -1) if stem[i] == '_']
        owner = next((stem[:i] for i in cuts if stem[:i] in gt_stems), None)
        if owner is None:
            unmatched.append(path)
        else:
            groups[owner].append(path)
    if unmatched:
        shown = ', '.join(unmatched[:5]) + (' ...' if len(unmatched) > 5 else '')
        raise ValueError(f'{len(unmatched)} SR file(s) match no GT image (<gt stem>.png or <gt stem>_*.png): {shown}')
    return {stem: sorted(paths) for stem, paths in sorted(groups.items())}


def select_temperature(groups: Dict[str, List[str]], temperature: Optional[float] = None) -> Dict[str, List[str]]:
    """Keep the SR files of one temperature.

    Args:
        groups (dict[str, list[str]]): GT stem -> SR files, as ``group_samples`` gives.
        temperature (float | None): Keep only the files tagged ``_t<temperature_tag(temperature)>_s<k>``; GT
            stems left without files are dropped. None keeps every file, but then the files of one GT stem must
            not carry two different temperature tags (untagged files go with any).

    Returns:
        dict[str, list[str]]: GT stem -> its SR files of that temperature.

    Raises:
        ValueError: naming the first image whose files come from several iterations or runs (validation's
        ``<image>_<iter>_t<T>_s<k>``: they are not samples of one model), or, without ``temperature``, the first
        image with several temperatures and them.
    """
    runs = {stem: sorted({run_tag_of(p, stem) for p in paths} - {None}) for stem, paths in groups.items()}
    runs = {stem: tags for stem, tags in runs.items() if len(tags) > 1}
    if runs:
        stem, tags = next(iter(runs.items()))
        more = f' (and {len(runs) - 1} more image(s))' if len(runs) > 1 else ''
        raise ValueError(f'The SR files of {stem} come from {len(tags)} iterations or runs ('
                         f'{", ".join(repr(t) for t in tags)} between the image name and _t<T>_s<k>){more}; the '
                         'samples of one image must come from one checkpoint. Measure a folder that holds one of '
                         'them.')
    if temperature is not None:
        tag = temperature_tag(temperature)
        kept = {stem: [p for p in paths if temperature_of(p, stem) == tag] for stem, paths in groups.items()}
        return {stem: paths for stem, paths in kept.items() if paths}
    mixed = {}
    for stem, paths in groups.items():
        tags = sorted({temperature_of(p, stem) for p in paths} - {None}, key=float)
        if len(tags) > 1:
            mixed[stem] = tags
    if mixed:
        stem, tags = next(iter(mixed.items()))
        more = f' (and {len(mixed) - 1} more image(s))' if len(mixed) > 1 else ''
        raise ValueError(f'The SR files of {stem} carry {len(tags)} temperatures ({", ".join(tags)}){more}; the '
                         'samples of one image must share one temperature. Pass --temperature T (temperature=T) to '
                         f'measure one of them, e.g. --temperature {tags[-1]}.')
    return groups


def find_lr(lr_paths: Sequence[str], stem: str) -> Optional[str]:
    """The LR file of GT ``stem``: ``<stem>.*`` or ``<stem>x<digits>.*``, or None."""
    for path in lr_paths:
        lr_stem = _stem(path)
        if lr_stem == stem or (lr_stem.startswith(stem + 'x') and lr_stem[len(stem) + 1:].isdigit()):
            return path
    return None


PROJECTED_KEYS = ('psnr', 'ssim', 'lpips', 'lr_psnr')  # measured again after back-projection (lr_consistency)


def _checked_scale(samples, gt, lq, scale, names):
    """The scale the samples are of (from the LR when given), checking that the samples share one shape, that they
    are a whole multiple of their LR and that the GT has their channels; the GT cropped to their size."""
    shape = samples[0].shape
    for img in samples:
        if img.shape != shape:
            raise ValueError(f'SR samples of {names[0]} differ in shape: {img.shape} vs {shape}.')
    if lq is not None:
        lr_scale = shape[0] // lq.shape[0] if lq.shape[0] else 0
        if lr_scale == 0 or shape[:2] != (lq.shape[0] * lr_scale, lq.shape[1] * lr_scale):
            raise ValueError(f'SR {names[0]} shape {shape} is not an integer multiple of its LR shape {lq.shape}.')
        if scale is not None and scale != lr_scale:
            raise ValueError(f'SR {names[0]} is x{lr_scale} of its LR, but scale={scale} was given.')
        scale = lr_scale
    if gt.shape[2:] != shape[2:]:
        raise ValueError(f'GT {names[1]} shape {gt.shape} does not match SR {names[0]} shape {shape}.')
    return scale, crop_gt_to_sr(gt, shape[:2], scale, f'GT {names[1]}', f'SR {names[0]}')


def _pixel_metrics(samples, gt, lq, scale, crop_border):
    """Mean PSNR, SSIM (RGB and Y) and LR-PSNR of the samples."""
    per_sample = defaultdict(list)
    for sr in samples:
        per_sample['psnr'].append(calculate_psnr(sr, gt, crop_border=crop_border))
        per_sample['ssim'].append(calculate_ssim(sr, gt, crop_border=crop_border))
        per_sample['psnr_y'].append(calculate_psnr(sr, gt, crop_border=crop_border, test_y_channel=True))
        per_sample['ssim_y'].append(calculate_ssim(sr, gt, crop_border=crop_border, test_y_channel=True))
        if lq is not None:
            per_sample['lr_psnr'].append(calculate_lr_psnr(sr, gt, lq=lq, against='lq'))
        if scale:
            per_sample['lr_psnr_gt'].append(calculate_lr_psnr(sr, gt, against='gt', scale=scale))
    return {key: float(np.mean(values)) for key, values in per_sample.items()}


def _lpips_metrics(samples, gt, crop_border, device):
    """Mean LPIPS of the samples and, for >= 2 samples, their diversity score."""
    c = crop_border
    crop = (lambda t: t[..., c:-c, c:-c]) if c else (lambda t: t)  # noqa: E731
    gt_t = crop(to_tensor(gt))
    maps, values = [], []
    for sr in samples:
        sr_t = crop(to_tensor(sr))
        values.append(lpips_distance(sr_t, gt_t, device=device).item())
        if len(samples) > 1:
            maps.append(lpips_distance(sr_t, gt_t, spatial=True, device=device)[0, 0].cpu())
    row = {'lpips': float(np.mean(values))}
    if maps:
        row['diversity'] = diversity_score(torch.stack(maps))
    return row


def measure_image(samples: Sequence[np.ndarray],
                  gt: np.ndarray,
                  lq: Optional[np.ndarray] = None,
                  scale: Optional[int] = None,
                  crop_border: int = 0,
                  use_lpips: bool = True,
                  names: Tuple[str, str] = ('sr', 'gt'),
                  lr_consistency: int = 0,
                  device: Union[str, torch.device, None] = None) -> Dict[str, float]:
    """Metrics of the SR samples of one image, averaged over the samples.

    Args:
        samples (list[ndarray]): SR images (HWC uint8 BGR), all of one shape.
        gt (ndarray): GT image; cropped at the bottom/right to the SR size when it is larger by less
            than the scale.
        lq (ndarray | None): LR input; gives the 'lr_psnr' column and fixes the scale.
        scale (int | None): Scale factor; needed for 'lr_psnr_gt' when lq is None.
        crop_border (int): Border cropped for PSNR, SSIM and LPIPS (in SR pixels). Default: 0.
        use_lpips (bool): Compute LPIPS and, for >= 2 samples, the diversity score. Default: True.
        names (tuple[str]): SR and GT names for error messages.
        device (str | torch.device | None): Where LPIPS runs. Default: CUDA when available, else the CPU.
        lr_consistency (int): Back-projection steps; > 0 (with lq) adds ``<key>_projected`` for the keys of
            PROJECTED_KEYS, measured on the projected samples. Default: 0.

    Returns:
        dict: psnr, ssim, psnr_y, ssim_y, samples, and when available lpips, lr_psnr, lr_psnr_gt,
        diversity, <key>_projected.
    """
    scale, gt = _checked_scale(samples, gt, lq, scale, names)
    row = {'samples': len(samples)}
    row.update(_pixel_metrics(samples, gt, lq, scale, crop_border))
    if use_lpips:
        row.update(_lpips_metrics(samples, gt, crop_border, device))
    if lr_consistency and lq is not None:
        projected = measure_image([back_project_image(sr, lq, lr_consistency) for sr in samples], gt, lq, scale,
                                  crop_border, use_lpips, names)
        row.update((f'{key}_projected', projected[key]) for key in PROJECTED_KEYS if key in projected)
    return row


def mean_row(rows: Sequence[dict]) -> dict:
    """Mean over the images of every numeric column (images without a value are left out)."""
    mean = {'image': 'mean', 'samples': sum(r['samples'] for r in rows)}
    if any('nonfinite' in r for r in rows):
        mean['nonfinite'] = sum(r.get('nonfinite', 0) for r in rows)
    for key in COLUMNS:
        if key in ('image', 'samples', 'nonfinite'):
            continue
        values = [r[key] for r in rows if r.get(key) is not None]
        if values:
            mean[key] = float(np.mean(values))
    return mean


def _sr_files(sr_folder, gt_stems, temperature, verbose):
    """The SR files of every GT stem at ``temperature`` (:func:`group_samples`, :func:`select_temperature`), less
    those listed as non-finite, which are warned about.

    Returns:
        tuple: (GT stem -> its measurable SR files, GT stem -> its SR files left out as non-finite).
    """
    nonfinite = read_nonfinite(sr_folder)
    groups = select_temperature(group_samples(images_in(sr_folder, recursive=True), gt_stems), temperature)
    left_out = {stem: [p for p in paths if p in nonfinite] for stem, paths in groups.items()}
    left_out = {stem: paths for stem, paths in left_out.items() if paths}
    if left_out:
        files = [p for paths in left_out.values() for p in paths]
        print(f'Warning: {len(files)} SR file(s) had non-finite pixels when they were written and are left out of '
              f'the metrics: {", ".join(files[:5])}' + (' ...' if len(files) > 5 else ''), file=sys.stderr)
        groups = {stem: [p for p in paths if p not in nonfinite] for stem, paths in groups.items()}
    if not groups:
        at = '' if temperature is None else f' at temperature {temperature_tag(temperature)} (<image>_t' \
            f'{temperature_tag(temperature)}_s<k>.png)'
        raise ValueError(f'No SR images in {sr_folder}{at}.')
    missing = sorted(set(gt_stems) - set(groups))
    if missing and verbose:
        print(f'{len(missing)} GT image(s) without SR images, not measured: {", ".join(missing[:10])}'
              + (' ...' if len(missing) > 10 else ''))
    return groups, left_out


def _read_lr(lr_paths, lr_folder, stem):
    lr_path = find_lr(lr_paths, stem)
    if lr_path is None:
        raise FileNotFoundError(f'No LR image for {stem} ({stem}.png or {stem}x<scale>.png) in {lr_folder}.')
    return read_image(lr_path)


def _measure_images(groups, left_out, gt_paths, lr_folder, features, verbose, **image_args):
    """One row per GT stem: :func:`measure_image` of its SR files (``image_args`` are its keyword arguments), their
    non-finite count; the samples and their GT go into ``features`` (FID, KID) when given."""
    lr_paths = images_in(lr_folder) if lr_folder else None
    rows = []
    for stem, sr_paths in groups.items():
        if not sr_paths:  # all of its samples were non-finite
            rows.append({'image': stem, 'samples': 0, 'nonfinite': len(left_out[stem])})
            continue
        lq = _read_lr(lr_paths, lr_folder, stem) if lr_paths is not None else None
        row = {'image': stem}
        if stem in left_out:
            row['nonfinite'] = len(left_out[stem])
        samples, gt = [read_image(p) for p in sr_paths], read_image(gt_paths[stem])
        row.update(measure_image(samples, gt, lq=lq, names=(sr_paths[0], gt_paths[stem]), **image_args))
        if features is not None:  # measure_image checked the shapes: the GT is cropped as there
            for sr in samples:
                features.update(sr, gt[:sr.shape[0], :sr.shape[1]])
        rows.append(row)
        if verbose:
            print(f"{stem}: {row['samples']} sample(s), PSNR {row['psnr']:.2f}"
                  + (f", LPIPS {row['lpips']:.4f}" if 'lpips' in row else ''))
    return rows


def _dataset_metrics(mean, rows, features, fid, kid, bootstrap, bootstrap_seed):
    """Adds FID, KID and the bootstrap values to the mean row."""
    if fid:
        mean['fid'] = frechet_distance(*features.arrays())
    if kid:
        mean['kid'] = kernel_distance(*features.arrays())[0]
    if bootstrap:
        measured = [r for r in rows if r['samples']]
        keys = [k for k in ('psnr', 'ssim', 'lpips', 'lr_psnr') if all(k in r for r in measured)]
        mean['bootstrap'] = bootstrap_values({k: [r[k] for r in measured] for k in keys}, features, bootstrap,
                                             bootstrap_seed)
        if not fid:
            mean['bootstrap'].pop('fid', None)
        if not kid:
            mean['bootstrap'].pop('kid', None)
    return mean


def measure(sr_folder: str,
            gt_folder: str,
            lr_folder: Optional[str] = None,
            scale: Optional[int] = None,
            crop_border: int = 0,
            use_lpips: bool = True,
            verbose: bool = True,
            temperature: Optional[float] = None,
            fid: bool = False,
            fid_features: Optional[Callable] = None,
            kid: bool = False,
            bootstrap: int = 0,
            bootstrap_seed: int = 0,
            lr_consistency: int = 0,
            device: Union[str, torch.device, None] = None) -> List[dict]:
    """Measure a folder of SR results against GT (and LR) images.

    Args:
        sr_folder (str): SR images, searched recursively; named by the rule in this module's doc.
        gt_folder (str): GT images.
        lr_folder (str | None): LR inputs; enable 'lr_psnr' (SRFlow's definition) and fix the scale.
        scale (int | None): Scale factor, required when lr_folder is None (for NTIRE's LR-PSNR).
        crop_border (int): Border cropped for PSNR, SSIM and LPIPS. Default: 0.
        use_lpips (bool): LPIPS and the diversity score. Default: True.
        verbose (bool): Print a line per image and the GT images without SR images. Default: True.
        temperature (float | None): Measure only the SR files of this temperature (:func:`select_temperature`).
        fid (bool): Also FID over all measured samples, in the mean row (key 'fid'). Default: False.
        fid_features (callable | None): FID's (and KID's) feature network (default: BasicSR's Inception-v3).
        device (str | torch.device | None): Where LPIPS, FID and KID run. Default: CUDA when available, else the CPU.
        kid (bool): Also KID from the same features, in the mean row (key 'kid'). Default: False.
        bootstrap (int): Resamples of the images for spreads: the mean row gets 'bootstrap', a dict metric ->
            (bootstrap,) values (:mod:`srflow_plugin.metrics.bootstrap`). Default: 0 (none).
        bootstrap_seed (int): Seed of the resamples (the same for every folder measured on one GT set). Default: 0.
        lr_consistency (int): Also measure every sample after this many back-projection steps onto its LR image
            (columns ``<key>_projected``; needs lr_folder). Default: 0 (off).

    Returns:
        list[dict]: One row per GT image with SR files (:data:`COLUMNS`), then the mean row (image 'mean').
    """
    if lr_folder is None and scale is None:
        raise ValueError('Give the LR folder (lr_folder / --lr) or the scale (scale / --scale).')
    if lr_consistency and lr_folder is None:
        raise ValueError('--lr_consistency projects the samples onto their LR images: give the LR folder (--lr).')
    if use_lpips:
        get_lpips_model(device=device)  # fail now, not after the PSNRs, when the backbone weights are missing
    # fails now without Inception weights
    features = InceptionFeatures(crop_border, feature_net=fid_features, device=device) if fid or kid else None
    gt_paths = {_stem(p): p for p in images_in(gt_folder)}
    groups, left_out = _sr_files(sr_folder, gt_paths, temperature, verbose)
    rows = _measure_images(groups, left_out, gt_paths, lr_folder, features, verbose, scale=scale,
                           crop_border=crop_border, use_lpips=use_lpips, lr_consistency=lr_consistency, device=device)
    return rows + [_dataset_metrics(mean_row(rows), rows, features, fid, kid, bootstrap, bootstrap_seed)]


def _columns(rows):
    return [key for key in COLUMNS if any(key in r for r in rows)]


def write_csv(rows: Sequence[dict], path: str) -> None:
    """Write the rows as CSV (full precision; 'inf' for identical images; empty where not computed)."""
    write_table(rows, path, _columns(rows))


def format_markdown(rows: Sequence[dict]) -> str:
    """The rows as a markdown table, rounded per column ('-' where not computed)."""
    columns = _columns(rows)
    lines = ['| ' + ' | '.join(COLUMNS[k][0] for k in columns) + ' |', '|' + '---|' * len(columns)]
    for row in rows:
        cells = []
        for key in columns:
            value, decimals = row.get(key), COLUMNS[key][1]
            if value is None:
                cells.append('-')
            elif decimals is None:
                cells.append(str(value))
            elif math.isinf(value):
                cells.append('inf')
            else:
                cells.append(f'{value:.{decimals}f}')
        lines.append('| ' + ' | '.join(cells) + ' |')
    return '\n'.join(lines) + '\n'
