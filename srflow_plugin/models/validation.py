"""Validation of a conditional flow: every image sampled at every temperature (``val.heats``), ``val.n_sample`` times,
measured, saved, tabulated.

Works for any flow with the interface of :class:`~srflow_plugin.archs.SRFlowNet`: ``scale``,
``condition(lq)``, ``encode(gt, cond=...)`` -> (latents, nll in bits/dim), ``decode(cond=..., latents=...)`` and
``draw_latents(h, w, temperature, generator, device=...)``. Samples are named and seeded by
:mod:`srflow_plugin.utils.sampling`, so validation and ``srflow-sample`` give the same picture for the same seed,
and ``srflow-measure`` reads validation's images.

Metrics: per-image metrics (BasicSR's ``calculate_metric``: ``val.metrics.<name>.type`` in ``METRIC_REGISTRY``) are
averaged over the samples of a temperature, then over the images. A dataset-level metric (FID and the like) registers a
class with :func:`register_dataset_metric`; it is built once per temperature, sees every sample (``update``) and reports
once (``compute``). Both give the key ``<name>_t<tau>``. A sample with non-finite pixels is counted (key
``nonfinite_t<tau>``, pixels summed over images and samples), warned about, and left out of every metric. With
``val.safe_sampling`` such samples are repaired first (:mod:`srflow_plugin.inference.safe_sampling`; key
``repaired_t<tau>``: the bad pixels repaired). With ``val.lr_consistency: N`` every sample is also
measured after N back-projection steps onto its LR input (:mod:`srflow_plugin.inference.lr_consistency`), under the
keys ``<name>_projected_t<tau>``.
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

__all__ = ['DATASET_METRICS', 'register_dataset_metric', 'temperature_suffix', 'validate']

DATASET_METRICS = {}


def register_dataset_metric(cls):
    """Class decorator: ``val.metrics.<name>.type: <ClassName>`` builds ``cls(**other options)`` once per temperature,
    calls ``update(sr, gt, lq)`` (uint8 BGR HWC images; gt None without GT) for every sample and ``compute()`` ->
    float once at the end."""
    DATASET_METRICS[cls.__name__] = cls
    return cls


def temperature_suffix(temperature):
    """'t0', 't0.5', 't0.75', 't1': the suffix of per-temperature metric keys."""
    return f't{temperature_tag(temperature)}'


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


def _init_best_metric_results(model, dataset_name, temperatures):
    """As BaseModel's, with one record per metric and temperature (and the NLL)."""
    better = {'nll': 'lower'}
    for temperature in temperatures:
        for name, better_of in _reported_names(model.opt).items():
            better[f'{name}_{temperature_suffix(temperature)}'] = better_of
        better[f'nonfinite_{temperature_suffix(temperature)}'] = 'lower'
        better[f'repaired_{temperature_suffix(temperature)}'] = 'lower'
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


def _image_path(opt, name, dataset_name, current_iter, temperature, sample):
    if opt['is_train']:
        return osp.join(opt['path']['visualization'], name, output_name(name, temperature, sample, tag=current_iter))
    suffix = opt['val'].get('suffix') or opt['name']
    return osp.join(opt['path']['visualization'], dataset_name, output_name(name, temperature, sample, tag=suffix))


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
        list[OrderedDict]: One row per image and temperature (image, heat: the temperature, metrics averaged over
        samples, nll, nonfinite_pixels when any).
    """
    dataset_name = path_component(dataloader.dataset.opt['name'], "Option 'datasets.<phase>.name'")
    run = _ValidationRun(model, net, dataset_name, current_iter, save_img, nll_constant)
    pbar = tqdm(total=len(dataloader), unit='image') if model.opt['val'].get('pbar', False) else None
    for val_data in dataloader:
        name = run.validate_image(val_data)
        if pbar is not None:
            pbar.update(1)
            pbar.set_description(f'Test {name}')
    if pbar is not None:
        pbar.close()

    model.metric_results = run.results()
    for key, value in model.metric_results.items():
        model._update_best_metric_result(dataset_name, key, value, current_iter)
    _log(model, dataset_name, current_iter, run.temperatures, tb_logger)
    return run.rows


class _ValidationRun:
    """One pass of :func:`validate`: the ``val`` options it reads, and what it gathers image by image (the CSV
    rows, the sums of per-image values, the dataset-level metrics, the non-finite and repaired pixels per temperature).

    Args:
        model (BaseModel): Gives the options, the device and the best-metric records (initialised here).
        net (nn.Module): The flow to sample from, in eval mode.
        dataset_name (str): Name of the validation set (a single path component).
        current_iter (int | str): Iteration, for the names of written samples.
        save_img (bool): Write every sample.
        nll_constant (float): Added to the NLL.
    """

    def __init__(self, model, net, dataset_name, current_iter, save_img, nll_constant):
        opt = self.opt = model.opt
        self.model, self.net, self.dataset_name = model, net, dataset_name
        self.current_iter, self.save_img, self.nll_constant = current_iter, save_img, nll_constant
        self.temperatures = [float(h) for h in get_option(opt, 'val', 'heats')]
        self.n_sample = int(get_option(opt, 'val', 'n_sample'))
        self.seed = get_option(opt, 'val', 'seed')
        self.calc_nll = get_option(opt, 'val', 'calc_nll')
        self.precompute = get_option(opt, 'val', 'precompute_condition')
        self.amp = get_option(opt, 'val', 'amp')  # mixed precision for the encoder and the affine sub-networks
        self.safe = get_option(opt, 'val', 'safe_sampling')
        self.projection = int(get_option(opt, 'val', 'lr_consistency'))
        self.variants = ['', PROJECTED] if self.projection else ['']
        self.metrics = _metric_options(opt)
        self.logger = get_root_logger()
        _init_best_metric_results(model, dataset_name, self.temperatures)

        self.dataset_metrics = {  # (metric + variant, temperature) -> accumulator of a dataset-level metric
            (name + variant, temperature): DATASET_METRICS[m['type']](**{k: v for k, v in m.items() if k != 'type'})
            for name, (m, _) in self.metrics.items() if m['type'] in DATASET_METRICS
            for temperature in self.temperatures for variant in self.variants}
        self.rows = []  # one per image and temperature, for the CSV
        self.sums, self.counts = OrderedDict(), OrderedDict()
        self.nonfinite = OrderedDict()  # temperature -> pixels
        self.repaired = OrderedDict()  # temperature -> bad pixels repaired by safe sampling

    def validate_image(self, val_data):
        """Samples one image at every temperature, measures its samples and adds its rows and values. Returns its
        name."""
        model, net = self.model, self.net
        name = path_component(image_name(val_data['lq_path'][0], net.scale), f"Image {val_data['lq_path'][0]}: name")
        model.feed_data(val_data)
        lq = model.lq
        images = dict(lq=to_image(lq), gt=None)  # uint8 images, as the metrics take them
        gt = getattr(model, 'gt', None)
        if gt is not None:
            gt = crop_gt_to_sr(gt, (lq.shape[-2] * net.scale, lq.shape[-1] * net.scale), net.scale,
                               f'GT of {name}', f'{net.scale}x its LR')
            images['gt'] = to_image(gt)
        with torch.no_grad(), mixed_precision(net, self.amp):
            cond = _condition(net, lq, self.precompute)
            image_values = OrderedDict()
            if gt is not None and self.calc_nll:
                image_values['nll'] = float(net.encode(gt, cond=cond)[1].mean()) + self.nll_constant
            noise = draw_noise(net, *lq.shape[-2:], self.n_sample, image_generator(self.seed, name))
            for temperature in self.temperatures:
                self._validate_temperature(name, cond, noise, temperature, images, image_values)
        for key, value in image_values.items():
            self.sums[key] = self.sums.get(key, 0.0) + value
            self.counts[key] = self.counts.get(key, 0) + 1
        del model.lq
        if hasattr(model, 'gt'):
            del model.gt
        return name

    def _validate_temperature(self, name, cond, noise, temperature, images, image_values):
        """The ``n_sample`` samples of one image at one temperature: each drawn, saved and measured (those with
        non-finite pixels only counted); appends the image's row of this temperature and puts its averages into
        ``image_values``."""
        temperature_values, bad_pixels = OrderedDict(), 0
        for _, sample in sample_keys([temperature], self.n_sample):
            output = self._draw_sample(cond, noise[sample], temperature)
            sr_img = to_image(output)
            bad = nonfinite_pixels(output)
            if self.save_img:
                image_path = _image_path(self.opt, name, self.dataset_name, self.current_iter, temperature, sample)
                write_image(sr_img, image_path)
                record_nonfinite(image_path, bad)
            if bad:
                bad_pixels += bad
                self.logger.warning(f'Validation {self.dataset_name}, image {name}, temperature {temperature:g}, '
                                    f'sample {sample}: {bad} non-finite pixels; this sample is left out of the '
                                    'metrics.')
                continue
            self._measure_sample(sr_img, temperature, images, temperature_values)
        row = OrderedDict(image=name, heat=temperature)
        for metric, values in temperature_values.items():
            row[metric] = sum(values) / len(values)
            image_values[f'{metric}_{temperature_suffix(temperature)}'] = row[metric]
        if 'nll' in image_values:
            row['nll'] = image_values['nll']
        if bad_pixels:
            row['nonfinite_pixels'] = bad_pixels
        self.nonfinite[temperature] = self.nonfinite.get(temperature, 0) + bad_pixels
        self.rows.append(row)

    def _draw_sample(self, cond, noise, temperature):
        """Decodes one sample from its standard noise at ``temperature`` (repaired with ``val.safe_sampling``) into
        ``model.output``, and returns it."""
        model, net = self.model, self.net
        latents = scaled(noise, temperature, model.lq.device)
        model.output = net.decode(cond=cond, latents=latents)
        if self.safe:
            model.output, repair = decode_safely(lambda z: net.decode(cond=cond, latents=z), latents, model.output)
            self.repaired[temperature] = self.repaired.get(temperature, 0) + repair.pixels
        return model.output

    def _measure_sample(self, sr_img, temperature, images, temperature_values):
        """Feeds one finite sample (``sr_img``, and with ``val.lr_consistency`` its back-projection) to every metric:
        dataset-level metrics accumulate it, per-image values (with GT) go to ``temperature_values``."""
        for variant in self.variants:
            if variant:
                sr_img = to_image(back_project(self.model.output, self.model.lq, self.net.scale, self.projection))
            for metric, (metric_opt, _) in self.metrics.items():
                if metric_opt['type'] in DATASET_METRICS:
                    self.dataset_metrics[metric + variant, temperature].update(sr_img, images['gt'], images['lq'])
                elif images['gt'] is not None:
                    value = float(calculate_metric(dict(img=sr_img, img2=images['gt'], lq=images['lq']), metric_opt))
                    temperature_values.setdefault(metric + variant, []).append(value)

    def results(self):
        """The averages over the images, the dataset-level metrics, and the non-finite and repaired pixels per
        temperature:
        ``model.metric_results``."""
        results = OrderedDict((key, self.sums[key] / self.counts[key]) for key in self.sums)
        for (metric, temperature), accumulator in self.dataset_metrics.items():
            results[f'{metric}_{temperature_suffix(temperature)}'] = float(accumulator.compute())
        for temperature, pixels in self.nonfinite.items():
            if pixels:
                results[f'nonfinite_{temperature_suffix(temperature)}'] = float(pixels)
        for temperature, pixels in self.repaired.items():
            results[f'repaired_{temperature_suffix(temperature)}'] = float(pixels)
        return results


def _log(model, dataset_name, current_iter, temperatures, tb_logger):
    results, best = model.metric_results, model.best_metric_results[dataset_name]
    names = list(_reported_names(model.opt))
    lines = [f'Validation {dataset_name}, iter {current_iter}']
    if 'nll' in results:
        lines.append(f'\t # nll: {results["nll"]:.4f} bits/dim ({getattr(model, "nll_scale", "continuous density")})'
                     f'\tBest: {best["nll"]["val"]:.4f} '
                     f'@ {best["nll"]["iter"]} iter')
    if names:
        lines.append('\t heat  ' + ''.join(f'{name:>12s}' for name in names))
        for temperature in temperatures:
            cells = [results.get(f'{name}_{temperature_suffix(temperature)}', float('nan')) for name in names]
            lines.append(f'\t {temperature:<5g} ' + ''.join(f'{value:12.4f}' for value in cells))
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


def write_metrics_csv(opt, dataset_name, rows, temperatures):
    """``results/<name>/metrics_<dataset>.csv``: one row per image and temperature, then the mean over images per
    temperature. The temperature's column is named ``heat``, as the option ``val.heats`` and earlier CSVs name it."""
    if not rows:
        return None
    columns = list(dict.fromkeys(key for row in rows for key in row))
    means = []
    for temperature in temperatures:
        temperature_rows = [row for row in rows if row['heat'] == temperature]
        mean = OrderedDict(image='mean', heat=temperature)
        for column in columns[2:]:
            values = [row[column] for row in temperature_rows if column in row]
            mean[column] = sum(values) / len(values) if values else float('nan')
        means.append(mean)
    csv_path = osp.join(opt['path']['results_root'], f'metrics_{dataset_name}.csv')
    os.makedirs(osp.dirname(csv_path), exist_ok=True)
    write_csv(rows + means, csv_path, columns, decimals=6, exact=('heat', ))
    get_root_logger().info(f'Metrics of {dataset_name} written to {csv_path}')
    return csv_path
