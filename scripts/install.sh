#!/usr/bin/env bash
# Installs srflow-plugin and what it needs, skipping what is already there.
# torch first: basicsr 1.4.2 is a source release whose setup imports torch, so it is built with
# --no-build-isolation against the torch installed here (no second torch download).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python}
if ! $PY -c "import torch, torchvision" >/dev/null 2>&1; then
    $PY -m pip install -q "torch==2.14.1" "torchvision==0.29.1"
fi
if ! $PY -c "import setuptools" >/dev/null 2>&1; then
    $PY -m pip install -q setuptools
fi
# A regular (not editable) install: the start-up file srflow_plugin.pth only lands in site-packages this way.
# The [test] extra brings pytest, flake8 and isort (the lint steps of .ci/run).
$PY -m pip install -q --no-build-isolation ".[test]"
