#!/usr/bin/env bash
# Gathers, on a machine with internet, the wheels that scripts/gpu_check.sh installs on a GPU machine without it.
#
#     bash scripts/gpu_wheels.sh [folder]        # default: gpu_wheels/ (git-ignored)
#
# The GPU machines this workplace lends run Python 3.12 (x86_64 Linux) with torch, torchvision, numpy, OpenCV
# (opencv-python-headless), scikit-image, scipy, PyYAML, tqdm, requests, Pillow and pytest already installed; what
# the plugin needs beyond them is gathered here: basicsr 1.4.2 (a source release, built here as a pure-Python
# wheel), lmdb, lpips and addict, as cp312 manylinux x86_64 wheels (gpu_check.sh installs only what the machine
# lacks), and a copy of the release fixtures of ../shared/reference. GPU_WHEELS_OPENCV=1 adds opencv-python-headless for a machine without OpenCV: 55 MiB alone, over what
# may travel beside the working tree. Everything travels with the working tree, whose limit is 64 MiB: the total
# is checked at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-gpu_wheels}
PY=${PYTHON:-python}
LIMIT_MIB=${GPU_WHEELS_LIMIT_MIB:-48}  # leaves room for the working tree itself within the 64 MiB
mkdir -p "$OUT"
TARGET=(--only-binary=:all: --no-deps --python-version 3.12 --implementation cp
        --platform manylinux2014_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux_2_28_x86_64)
# basicsr 1.4.2's setup.py imports torch: built against the torch installed here, without build isolation; the
# wheel is pure Python, so it installs on any Python 3 / torch
if ! ls "$OUT"/basicsr-1.4.2-*.whl >/dev/null 2>&1; then
    $PY -m pip wheel -q --no-deps --no-build-isolation -w "$OUT" basicsr==1.4.2
fi
$PY -m pip download -q "${TARGET[@]}" -d "$OUT" lmdb lpips addict
if [ "${GPU_WHEELS_OPENCV:-0}" = 1 ]; then
    $PY -m pip download -q "${TARGET[@]}" -d "$OUT" opencv-python-headless
fi
# the SRFlow release's fixtures (tests/test_release_checkpoints.py), which live beside the repository and would not
# travel otherwise: gpu_check.sh points SRFLOW_REFERENCE_DIR at this copy
REFERENCE=${SRFLOW_REFERENCE_DIR:-../shared/reference}
if [ -d "$REFERENCE" ]; then
    mkdir -p "$OUT/reference"
    cp "$REFERENCE"/*.pt "$OUT/reference/"
fi
# one version of each package, or pip refuses the whole install
dupes=$(ls "$OUT"/*.whl | xargs -n1 basename | cut -d- -f1 | tr 'A-Z-' 'a-z_' | sort | uniq -d)
if [ -n "$dupes" ]; then
    echo "gpu_wheels.sh: error: $OUT holds more than one version of: $dupes (remove the older ones)" >&2
    exit 1
fi
ls -l "$OUT"/*.whl
total=$(du -sm "$OUT" | cut -f1)
echo "gpu_wheels.sh: $(ls "$OUT"/*.whl | wc -l) wheels$([ -d "$OUT/reference" ] && echo ' and the release fixtures'), $total MiB in $OUT"
if [ "$total" -gt "$LIMIT_MIB" ]; then
    echo "gpu_wheels.sh: error: $total MiB is over the $LIMIT_MIB MiB that may travel with the working tree" >&2
    exit 1
fi
