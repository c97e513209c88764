"""Checks that must pass before hours of training: everything validation and saving will need exists.

:func:`check_run` runs when ``srflow-train`` / ``srflow-test`` have parsed the option file (before data loaders
are built) and :func:`check_model_needs` when ``SRFlowModel`` is built (also under BasicSR's own entry points).
Each error names the option and the file or folder at fault.
"""
import os
import uuid
from os import path as osp

from basicsr.utils import get_root_logger
from basicsr.utils.registry import METRIC_REGISTRY

from srflow_plugin.options_schema import OptionError, check_options, get_option

# folders the model writes into: checkpoints, training states, validation images, metric CSVs
OUTPUT_FOLDERS = ('models', 'training_states', 'visualization', 'results_root')


def check_dataset_paths(opt):
    """Every ``datasets.<phase>.dataroot_*`` / ``meta_info_file`` must exist (named in the error)."""
    for phase, dataset in (opt.get('datasets') or {}).items():
        for key, value in (dataset or {}).items():
            if (key.startswith('dataroot') or key == 'meta_info_file') and value is not None:
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
    from srflow_plugin.metrics.lpips_metric import backbone_weights_path
    weights = backbone_weights_path(metric_opt.get('net', 'alex'))
    if not osp.isfile(weights):
        raise FileNotFoundError(f'LPIPS needs its backbone weights {weights}, which are missing (they cannot be '
                                'downloaded offline; see docs/robustness.md)')


def _fid_backbone(metric_opt):
    from srflow_plugin.metrics import fid
    fid.get_inception()  # FileNotFoundError naming both places BasicSR looks in; built once, reused by validation


# metric type -> a check that its pretrained backbone is available (raises FileNotFoundError naming the file)
BACKBONE_CHECKS = {'calculate_lpips': _lpips_backbone, 'FID': _fid_backbone, 'KID': _fid_backbone}


def check_metrics(opt):
    """Every ``val.metrics`` type must be registered (BasicSR's METRIC_REGISTRY or a dataset-level metric); the
    pretrained backbone of LPIPS, FID and KID must be on disk.

    With ``val.skip_missing_metrics: true`` a metric whose backbone is missing is removed from the options with a
    warning instead.
    """
    from srflow_plugin.models.validation import DATASET_METRICS
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


def check_run(opt):
    """At the entry point, right after the option file is parsed: options, dataset paths."""
    if opt.get('model_type') == 'SRFlowModel':
        check_options(opt)
    check_dataset_paths(opt)
