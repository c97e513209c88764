"""Test entry point: ``python -m srflow_plugin.test -opt options/test_SRFlow_x4.yml``.

Imports the plugin and hands over to BasicSR's test pipeline with the current directory as root, so the
SR images, logs and metric CSVs land in results/<name>/ under it.
"""
import os
import sys
from os import path as osp

from basicsr import test as basicsr_test
from basicsr.utils.options import parse_options

from srflow_plugin.entry import checked_parse_options, command_line
from srflow_plugin.utils.allocator import keep_freed_memory
from srflow_plugin.utils.basicsr_compat import change_test_pipeline

DESCRIPTION = ('Test a trained SRFlow model with BasicSR\'s test pipeline: samples every test image at the '
               'temperatures val.heats, writes them to results/<name>/visualization/ and the metrics (and NLL) to '
               'results/<name>/metrics_<dataset>.csv under the current directory.')


def main(argv=None):
    command_line('srflow-test', DESCRIPTION, training=False).parse_args(sys.argv[1:] if argv is None else argv)
    keep_freed_memory()  # fewer page faults (srflow_plugin/utils/allocator.py)
    change_test_pipeline(checked_parse_options(parse_options, 'srflow-test'))  # (utils/basicsr_compat.py)
    basicsr_test.test_pipeline(osp.abspath(os.getcwd()))


if __name__ == '__main__':
    main()
