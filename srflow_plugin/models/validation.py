"""Validation of a conditional flow: every image sampled at every temperature (``val.heats``), ``val.n_sample`` times,
measured, saved, tabulated.

Works for any flow with the interface of :class:`~srflow_plugin.archs.SRFlowNet`: ``scale``,
``condition(lq)``, ``encode(gt, cond=...)`` -> (latents, nll in bits/dim), ``decode(cond=..., latents=...)`` and
``draw_latents(h, w, temperature, generator, device=...)``. Samples are named and seeded by
:mod:`srflow_plugin.utils.sampling`, so validation and ``srflow-sample`` give the same picture for the same seed,
and ``srflow-measure`` reads validation's images.

Metrics: per-image metrics (BasicSR's ``calculate_metric``: ``val.metrics.<name>.type`` in ``METRIC_REGISTRY``) are
averaged over the samples of a heat, then over the images. A dataset-level metric (FID and the like) registers a
class with :func:`register_dataset_metric`; it is built once per heat, sees every sample (``update``) and reports
once (``compute``). Both give the key ``<name>_t<heat>``. A sample with non-finite pixels is counted (key
``nonfinite_t<heat>``, pixels summed over images and samples), warned about, and left out of every metric. With
``val.safe_sampling`` such samples are repaired first (:mod:`srflow_plugin.inference.safe_sampling`; key
``repaired_t<heat>``: the bad pixels repaired). With ``val.lr_consistency: N`` every sample is also
measured after N back-projection steps onto its LR input (:mod:`srflow_plugin.inference.lr_consistency`), under the
keys ``<name>_projected_t<heat>``.
"""
import inspect
import os
from collections import OrderedDict
from os import path as osp

import torch
from basicsr.metrics import calculate_metric
from basicsr.utils import get_root_logger
from tqdm import tqdm

from srflow_plugin.archs.srflow_arch import mixed_precision
from srflow_plugin.inference.lr_consistency import back_project
from srflow_plugin.inference.safe_sampling import decode_safely
from srflow_plugin.options_schema import get_option
from srflow_plugin.utils.image import crop_gt_to_sr, nonfinite_pixels, record_nonfinite, to_image, write_image
from srflow_plugin.utils.paths import path_component
from srflow_plugin.utils.sampling import (draw_noise, image_generator, image_name, output_name, sample_keys, scaled,
                                          temperature_tag)
from srflow_plugin.utils.table import write_csv

__all__ = ['DATASET_METRICS', 'register_dataset_metric', 'heat_suffix', 'validate']

DATASET_METRICS = {}


def register_dataset_metric(cls):
    """Class decorator: ``val.metrics.<name>.type: <ClassName>`` builds ``cls(**other options)`` once per heat, calls
    ``update(sr, gt, lq)`` (uint8 BGR HWC images; gt None without GT) for every sample and ``compute()`` -> float
    once at the end."""
    DATASET_METRICS[cls.__name__] = cls
    return cls


def heat_suffix(heat):
    """'t0', 't0.5', 't0.75', 't1': the suffix of per-heat metric keys."""
    return f't{temperature_tag(heat)}'


PROJECTED = '_projected'  # metric name suffix of the back-projected samples (val.lr_consistency)


def _metric_options(opt):
    """name -> (options without ``better``, better)"""
    metrics = (opt.get('val') or {}).get('metrics') or {}
    return OrderedDict((name, ({k: v for k, v in m.items() if k != 'better'}, m.get('better', 'higher')))
                       for name, m in metrics.items())


def _reported_names(opt):
    """name -> better for every reported metric: each metric, then (val.lr_consistency > 0) its projected twin."""
    names = OrderedDict((name, better) for name, (_, better) in _metric_options(opt).items())
    if get_option(opt, 'val', 'lr_consistency'):
        names.update((name + PROJECTED, better) for name, better in list(names.items()))
    return names


def _init_best_metric_results(model, dataset_name, heats):
    """As BaseModel's, with one record per metric and heat (and the NLL)."""
    better = {'nll': 'lower'}
    for heat in heats:
        for name, better_of in _reported_names(model.opt).items():
            better[f'{name}_{heat_suffix(heat)}'] = better_of
        better[f'nonfinite_{heat_suffix(heat)}'] = 'lower'
        better[f'repaired_{heat_suffix(heat)}'] = 'lower'
    records = getattr(model, 'best_metric_results', None)
    if records is None:
        records = model.best_metric_results = dict()
    for key, better_of in better.items():
        records.setdefault(dataset_name, {}).setdefault(
            key, dict(better=better_of, val=float('-inf') if better_of == 'higher' else float('inf'), iter=-1))


def _condition(net, lq, precompute):
    if 'precompute' in inspect.signature(net.condition).parameters:
        return net.condition(lq, precompute=precompute)
    return net.condition(lq)


def _image_path(opt, name, dataset_name, current_iter, heat, sample):
    if opt['is_train']:
        return osp.join(opt['path']['visualization'], name, output_name(name, heat, sample, tag=current_iter))
    suffix = opt['val'].get('suffix') or opt['name']
    return osp.join(opt['path']['visualization'], dataset_name, output_name(name, heat, sample, tag=suffix))


def validate(model, net, dataloader, current_iter, tb_logger, save_img, nll_constant=0.0):
    """Validates ``net`` on ``dataloader`` for ``model`` (a BasicSR model: ``opt``, ``device``, ``feed_data``, the
    best-metric records); leaves the averages in ``model.metric_results`` and logs them.

    Args:
        model (BaseModel): Gives the options, the device and the best-metric bookkeeping.
        net (nn.Module): The flow to sample from, in eval mode.
        dataloader: Batches of one image (``lq``, ``lq_path``, optionally ``gt``).
        current_iter (int | str): Iteration (training) for names and records.
        tb_logger: Tensorboard logger or None.
        save_img (bool): Write every sample (names from :func:`_image_path`).
        nll_constant (float): Added to the NLL (the training loss's dequantisation constant, bits/dim).

    Returns:
        list[OrderedDict]: One row per image and heat (image, heat, metrics averaged over samples, nll,
        nonfinite_pixels when any).
    """
    opt = model.opt
    dataset_name = path_component(dataloader.dataset.opt['name'], "Option 'datasets.<phase>.name'")
    heats = [float(h) for h in get_option(opt, 'val', 'heats')]
    n_sample = int(get_option(opt, 'val', 'n_sample'))
    seed = get_option(opt, 'val', 'seed')
    calc_nll = get_option(opt, 'val', 'calc_nll')
    precompute = get_option(opt, 'val', 'precompute_condition')
    amp = get_option(opt, 'val', 'amp')  # mixed precision for the encoder and the affine sub-networks
    safe = get_option(opt, 'val', 'safe_sampling')
    projection = int(get_option(opt, 'val', 'lr_consistency'))
    variants = ['', PROJECTED] if projection else ['']
    metrics = _metric_options(opt)
    logger = get_root_logger()
    _init_best_metric_results(model, dataset_name, heats)

    dataset_metrics = {(name + variant, heat): DATASET_METRICS[m['type']](**{k: v for k, v in m.items() if k != 'type'})
                       for name, (m, _) in metrics.items() if m['type'] in DATASET_METRICS for heat in heats
                       for variant in variants}
    rows = []  # one per image and heat, for the CSV
    sums, counts = OrderedDict(), OrderedDict()
    nonfinite = OrderedDict()  # heat -> pixels
    repaired = OrderedDict()  # heat -> bad pixels repaired by safe sampling
    pbar = tqdm(total=len(dataloader), unit='image') if opt['val'].get('pbar', False) else None

    for val_data in dataloader:
        name = path_component(image_name(val_data['lq_path'][0], net.scale), f"Image {val_data['lq_path'][0]}: name")
        model.feed_data(val_data)
        lq = model.lq
        lq_img = to_image(lq)
        gt = getattr(model, 'gt', None)
        if gt is not None:
            gt = crop_gt_to_sr(gt, (lq.shape[-2] * net.scale, lq.shape[-1] * net.scale), net.scale,
                               f'GT of {name}', f'{net.scale}x its LR')
            gt_img = to_image(gt)
        with torch.no_grad(), mixed_precision(net, amp):
            cond = _condition(net, lq, precompute)
            image_values = OrderedDict()
            if gt is not None and calc_nll:
                image_values['nll'] = float(net.encode(gt, cond=cond)[1].mean()) + nll_constant
            noise = draw_noise(net, *lq.shape[-2:], n_sample, image_generator(seed, name))
            for heat in heats:
                heat_values, bad_pixels = OrderedDict(), 0
                for _, sample in sample_keys([heat], n_sample):
                    latents = scaled(noise[sample], heat, lq.device)
                    model.output = net.decode(cond=cond, latents=latents)
                    if safe:
                        model.output, repair = decode_safely(lambda z: net.decode(cond=cond, latents=z), latents,
                                                             model.output)
                        repaired[heat] = repaired.get(heat, 0) + repair.pixels
                    sr_img = to_image(model.output)
                    bad = nonfinite_pixels(model.output)
                    if save_img:
                        image_path = _image_path(opt, name, dataset_name, current_iter, heat, sample)
                        write_image(sr_img, image_path)
                        record_nonfinite(image_path, bad)
                    if bad:
                        bad_pixels += bad
                        logger.warning(f'Validation {dataset_name}, image {name}, heat {heat:g}, sample {sample}: '
                                       f'{bad} non-finite pixels; this sample is left out of the metrics.')
                        continue
                    for variant in variants:
                        if variant:
                            sr_img = to_image(back_project(model.output, lq, net.scale, projection))
                        for metric, (metric_opt, _) in metrics.items():
                            if metric_opt['type'] in DATASET_METRICS:
                                dataset_metrics[metric + variant, heat].update(sr_img, gt_img if gt is not None
                                                                               else None, lq_img)
                            elif gt is not None:
                                value = float(calculate_metric(dict(img=sr_img, img2=gt_img, lq=lq_img), metric_opt))
                                heat_values.setdefault(metric + variant, []).append(value)
                row = OrderedDict(image=name, heat=heat)
                for metric, values in heat_values.items():
                    row[metric] = sum(values) / len(values)
                    image_values[f'{metric}_{heat_suffix(heat)}'] = row[metric]
                if 'nll' in image_values:
                    row['nll'] = image_values['nll']
                if bad_pixels:
                    row['nonfinite_pixels'] = bad_pixels
                nonfinite[heat] = nonfinite.get(heat, 0) + bad_pixels
                rows.append(row)
        for key, value in image_values.items():
            sums[key] = sums.get(key, 0.0) + value
            counts[key] = counts.get(key, 0) + 1
        del model.lq
        if hasattr(model, 'gt'):
            del model.gt
        if pbar is not None:
            pbar.update(1)
            pbar.set_description(f'Test {name}')
    if pbar is not None:
        pbar.close()

    results = OrderedDict((key, sums[key] / counts[key]) for key in sums)
    for (metric, heat), accumulator in dataset_metrics.items():
        results[f'{metric}_{heat_suffix(heat)}'] = float(accumulator.compute())
    for heat, pixels in nonfinite.items():
        if pixels:
            results[f'nonfinite_{heat_suffix(heat)}'] = float(pixels)
    for heat, pixels in repaired.items():
        results[f'repaired_{heat_suffix(heat)}'] = float(pixels)
    model.metric_results = results
    for key, value in results.items():
        model._update_best_metric_result(dataset_name, key, value, current_iter)
    _log(model, dataset_name, current_iter, heats, tb_logger)
    return rows


def _log(model, dataset_name, current_iter, heats, tb_logger):
    results, best = model.metric_results, model.best_metric_results[dataset_name]
    names = list(_reported_names(model.opt))
    lines = [f'Validation {dataset_name}, iter {current_iter}']
    if 'nll' in results:
        lines.append(f'\t # nll: {results["nll"]:.4f} bits/dim ({getattr(model, "nll_scale", "continuous density")})'
                     f'\tBest: {best["nll"]["val"]:.4f} '
                     f'@ {best["nll"]["iter"]} iter')
    if names:
        lines.append('\t heat  ' + ''.join(f'{name:>12s}' for name in names))
        for heat in heats:
            cells = [results.get(f'{name}_{heat_suffix(heat)}', float('nan')) for name in names]
            lines.append(f'\t {heat:<5g} ' + ''.join(f'{value:12.4f}' for value in cells))
    for key, value in results.items():
        if key.startswith('nonfinite_'):
            lines.append(f'\t # {key}: {value:.0f} non-finite pixels (those samples are not in the metrics)')
        elif key.startswith('repaired_'):
            lines.append(f'\t # {key}: {value:.0f} bad pixels repaired by val.safe_sampling')
        elif key != 'nll':
            lines.append(f'\t # {key}: {value:.4f}\tBest: {best[key]["val"]:.4f} @ {best[key]["iter"]} iter')
    get_root_logger().info('\n'.join(lines))
    if tb_logger:
        for key, value in results.items():
            tb_logger.add_scalar(f'metrics/{dataset_name}/{key}', value, current_iter)


def write_metrics_csv(opt, dataset_name, rows, heats):
    """``results/<name>/metrics_<dataset>.csv``: one row per image and heat, then the mean over images per heat."""
    if not rows:
        return None
    columns = list(dict.fromkeys(key for row in rows for key in row))
    means = []
    for heat in heats:
        heat_rows = [row for row in rows if row['heat'] == heat]
        mean = OrderedDict(image='mean', heat=heat)
        for column in columns[2:]:
            values = [row[column] for row in heat_rows if column in row]
            mean[column] = sum(values) / len(values) if values else float('nan')
        means.append(mean)
    csv_path = osp.join(opt['path']['results_root'], f'metrics_{dataset_name}.csv')
    os.makedirs(osp.dirname(csv_path), exist_ok=True)
    write_csv(rows + means, csv_path, columns, decimals=6, exact=('heat', ))
    get_root_logger().info(f'Metrics of {dataset_name} written to {csv_path}')
    return csv_path
