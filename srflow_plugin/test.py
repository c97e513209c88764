"""Test entry point: ``python -m srflow_plugin.test -opt options/test_SRFlow_x4.yml``.

Imports the plugin and hands over to BasicSR's test pipeline with the current directory as root, so the
SR images, logs and metric CSVs land in results/<name>/ under it.
"""
import os
from os import path as osp

import srflow_plugin  # noqa: F401  (registers the SRFlow classes in BasicSR's registries)
from basicsr.test import test_pipeline


def main():
    test_pipeline(osp.abspath(os.getcwd()))


if __name__ == '__main__':
    main()
