#!/usr/bin/env bash
# Rebuilds the built-in model (srflow_plugin/pretrained/srflow_builtin_x4.pth) end to end, on the CPU:
#   1. the photographs (Debian wallpaper packages + scikit-image; needs apt-get, skipped when already there),
#   2. stage 1: the RRDB encoder alone, L1, BasicSR's SRModel  (options/cpu/train_builtin_rrdb_x4.yml),
#   3. stage 2: SRFlow on that encoder, frozen for its first 1250 iterations (options/cpu/train_builtin_srflow_x4.yml),
#   4. packs the result into the package (weights + network options, non-finite weights refused),
#   5. prints the held-out table of docs/model-card.md (scripts/evaluate_builtin.py).
# Run from the repository root:  bash scripts/train_builtin.sh      (58.5 minutes on 2 free CPU cores)
# Each stage resumes where it stopped when run again (--auto_resume); delete experiments/builtin_* to start over.
set -euo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" OMP_NUM_THREADS="${OMP_NUM_THREADS:-2}"

if [ ! -d datasets/builtin/builtin_train_sub.lmdb ]; then
    python scripts/fetch_photos.py
fi
python -m srflow_plugin.train -opt options/cpu/train_builtin_rrdb_x4.yml --auto_resume
python -m srflow_plugin.train -opt options/cpu/train_builtin_srflow_x4.yml --auto_resume
python -c "from srflow_plugin.pretrained import pack_checkpoint; print('packed', pack_checkpoint(
    'experiments/builtin_srflow_x4/models/net_g_latest.pth', 'options/cpu/train_builtin_srflow_x4.yml'))"
python scripts/evaluate_builtin.py --projection 20
