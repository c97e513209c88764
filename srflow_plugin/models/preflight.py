"""Checks that must pass before hours of training: everything validation and saving will need exists, nothing will
be written outside the run's folder or into an input, and no other live run writes into that folder.

:func:`check_run` runs when ``srflow-train`` / ``srflow-test`` have parsed the option file (before data loaders
are built) and :func:`check_model_needs` when ``SRFlowModel`` is built (also under BasicSR's own entry points).
Each error names the option and the file or folder at fault.
"""
import os
import uuid
from os import path as osp

from basicsr.utils import get_root_logger
from basicsr.utils.registry import METRIC_REGISTRY

from srflow_plugin.metrics import fid
from srflow_plugin.metrics.lpips_metric import backbone_weights_path
from srflow_plugin.models.validation import DATASET_METRICS
from srflow_plugin.options_schema import OptionError, check_options, get_option
from srflow_plugin.utils.lmdb_check import check_lmdb, lmdb_keys
from srflow_plugin.utils.paths import check_outputs, path_component
from srflow_plugin.utils.run_lock import hold_folder

# folders the model writes into: checkpoints, training states, validation images, metric CSVs
OUTPUT_FOLDERS = ('models', 'training_states', 'visualization', 'results_root')


def check_dataset_paths(opt):
    """Every ``datasets.<phase>.dataroot_*`` / ``meta_info_file`` / ``meta_info`` must exist (named in the error)."""
    for phase, dataset in (opt.get('datasets') or {}).items():
        for key, value in (dataset or {}).items():
            if (key.startswith('dataroot') or key in ('meta_info_file', 'meta_info')) and value is not None:
                if not osp.exists(value):
                    raise FileNotFoundError(f"Option 'datasets.{phase}.{key}': no such file or folder {value}")


def check_writable(folder, key):
    """Creates ``folder`` when needed and writes a probe file into it; the error names the option and folder."""
    probe = osp.join(folder, f'.srflow_write_probe_{uuid.uuid4().hex}')
    try:
        os.makedirs(folder, exist_ok=True)
        with open(probe, 'wb') as f:
            f.write(b'0' * 4096)
    except OSError as error:
        raise OSError(f"Option 'path.{key}': cannot write into {folder} ({error.strerror or error}).") from error
    finally:
        if osp.exists(probe):
            os.remove(probe)


def _lpips_backbone(metric_opt):
    weights = backbone_weights_path(metric_opt.get('net', 'alex'))
    if not osp.isfile(weights):
        raise FileNotFoundError(f'LPIPS needs its backbone weights {weights}, which are missing (they cannot be '
                                'downloaded offline; see docs/robustness.md)')


def _fid_backbone(metric_opt):
    fid.get_inception()  # FileNotFoundError naming both places BasicSR looks in; built once, reused by validation


# metric type -> a check that its pretrained backbone is available (raises FileNotFoundError naming the file)
BACKBONE_CHECKS = {'calculate_lpips': _lpips_backbone, 'FID': _fid_backbone, 'KID': _fid_backbone}


def check_metrics(opt):
    """Every ``val.metrics`` type must be registered (BasicSR's METRIC_REGISTRY or a dataset-level metric); the
    pretrained backbone of LPIPS, FID and KID must be on disk.

    With ``val.skip_missing_metrics: true`` a metric whose backbone is missing is removed from the options with a
    warning instead.
    """
    metrics = (opt.get('val') or {}).get('metrics') or {}
    for name in list(metrics):
        metric_type = (metrics[name] or {}).get('type')
        if metric_type not in METRIC_REGISTRY and metric_type not in DATASET_METRICS:
            known = sorted(list(METRIC_REGISTRY.keys()) + list(DATASET_METRICS))
            raise OptionError(f"Option 'val.metrics.{name}.type' = {metric_type!r}: not a registered metric "
                              f'({", ".join(known)}).')
        if metric_type in BACKBONE_CHECKS:
            try:
                BACKBONE_CHECKS[metric_type](metrics[name])
            except FileNotFoundError as error:
                message = f"Metric 'val.metrics.{name}' ({metric_type}): {error}"
                if not get_option(opt, 'val', 'skip_missing_metrics'):
                    raise FileNotFoundError(message + ' Set val.skip_missing_metrics: true to skip the metric.') \
                        from error
                get_root_logger().warning(message + ' Skipped (val.skip_missing_metrics).')
                del metrics[name]


def check_model_needs(opt):
    """At model build: metrics computable, output folders writable."""
    if opt.get('val') is not None:
        check_metrics(opt)
    for key in OUTPUT_FOLDERS:
        folder = (opt.get('path') or {}).get(key)
        if folder and (opt['is_train'] or key in ('visualization', 'results_root')):
            if opt.get('rank', 0) == 0:
                check_writable(folder, key)


def _run_root(opt):
    """(option naming it, folder) of the run: experiments/<name> in training, results/<name> in testing."""
    key = 'experiments_root' if opt.get('is_train') else 'results_root'
    return f'path.{key}', (opt.get('path') or {}).get(key)


def check_names(opt):
    """The names that become parts of output paths (``name``, ``datasets.<phase>.name``) are one file name each."""
    try:
        path_component(opt.get('name'), "Option 'name'")
        for phase, dataset in (opt.get('datasets') or {}).items():
            path_component((dataset or {}).get('name'), f"Option 'datasets.{phase}.name'")
    except ValueError as error:
        raise OptionError(str(error)) from error


def check_crop_sizes(opt):
    """``datasets.<phase>.gt_size`` is a multiple of ``scale`` (BasicSR crops gt_size / scale LR pixels)."""
    scale = opt.get('scale')
    for phase, dataset in (opt.get('datasets') or {}).items():
        gt_size = (dataset or {}).get('gt_size')
        if isinstance(gt_size, int) and isinstance(scale, int) and scale > 0 and gt_size % scale:
            raise OptionError(f"Option 'datasets.{phase}.gt_size' = {gt_size}: must be a multiple of scale {scale} "
                              f'(its LR crop is gt_size / scale pixels), e.g. {gt_size // scale * scale}.')


def check_lmdbs(opt):
    """Every LMDB a dataset reads is whole (:func:`~srflow_plugin.utils.lmdb_check.check_lmdb`); the keys of the
    validation and test LMDBs, which name output images, are file names."""
    for phase, dataset in (opt.get('datasets') or {}).items():
        if ((dataset or {}).get('io_backend') or {}).get('type') != 'lmdb':
            continue
        for key, value in dataset.items():
            if key.startswith('dataroot') and isinstance(value, str):
                check_lmdb(value)
                if not phase.startswith('train'):
                    for lmdb_key in lmdb_keys(value):
                        path_component(lmdb_key, f'LMDB {value}: key')


def check_inputs_outside_run(opt):
    """The run's folder neither is, contains nor lies inside a dataset (BasicSR archives an existing run folder of
    the name, which would take a dataset inside it along). Checkpoints of the run itself may lie inside it (a
    resumed or fine-tuned run reads them)."""
    key, root = _run_root(opt)
    inputs = {f'datasets.{phase}.{k}': v for phase, dataset in (opt.get('datasets') or {}).items()
              for k, v in (dataset or {}).items()
              if (k.startswith('dataroot') or k in ('meta_info_file', 'meta_info')) and v}
    if root:
        check_outputs({f'{key} (from name)': root}, inputs)


def hold_run_folder(opt):
    """Rank 0 takes the lock of the run's folder (:mod:`srflow_plugin.utils.run_lock`): a second live run of the same
    name is refused before BasicSR archives or writes anything."""
    key, root = _run_root(opt)
    if root and opt.get('rank', 0) == 0:
        hold_folder(root, 'Experiment folder' if opt.get('is_train') else 'Results folder')


def check_run(opt):
    """At the entry point, right after the option file is parsed: options, names, dataset paths and LMDBs, crop
    sizes, the run's folder outside its inputs; then the run's folder is held."""
    if opt.get('model_type') in ('SRFlowModel', 'RealSRFlowModel'):
        check_options(opt)
    check_names(opt)
    check_crop_sizes(opt)
    check_dataset_paths(opt)
    check_lmdbs(opt)
    check_inputs_outside_run(opt)
    hold_run_folder(opt)
