#!/usr/bin/env bash
# One prepared check for a GPU machine without internet: install, the CUDA tests, then the figures of
# docs/performance.md's GPU table, all in one log. At most about 8 minutes on one GPU (each step has its own limit).
#
#     bash scripts/gpu_wheels.sh                 # before, on a machine with internet: gpu_wheels/ (git-ignored)
#     bash scripts/gpu_check.sh                  # on the GPU machine, gpu_wheels/ carried beside the working tree
#     bash scripts/gpu_check.sh --dry-run        # the same steps on the CPU with a tiny network and a few steps,
#                                                # nothing installed (tests/test_gpu_check.py runs it)
#
# Steps: 1. install the wheels the machine lacks and this package, with --no-deps --no-index, into the Python
# that has torch (PYTHON, default python3); 2. the tests that run on CUDA (pytest -m cuda: the device-sensitive
# tests, tests/helpers/devices.py); 3. the released x4 layout at the release's batch, 12 x 160x160 GT: seconds per step,
# torch.cuda.max_memory_allocated and the NLL after the same steps for plain, memory_saving, bf16 and fp16, then the
# largest batch that fits for plain and memory_saving (scripts/benchmark_training.py); 4. ten samples of a 160x160
# LR image (scripts/benchmark_sampling.py). The log goes to $GPU_CHECK_LOG, default $OUT/gpu_check.log where OUT is
# set (the device tool's folder of files that come back), else gpu_check.log. The exit status is that of the first
# failed step (0: all passed); every step runs.
set -uo pipefail
cd "$(dirname "$0")/.."
DRY_RUN=0
[ "${1:-}" = --dry-run ] && DRY_RUN=1
PY=${PYTHON:-python3}
WHEELS=${GPU_WHEELS:-gpu_wheels}
LOG=${GPU_CHECK_LOG:-${OUT:+$OUT/}gpu_check.log}
: > "$LOG"
exec > >(tee -a "$LOG") 2>&1
export PYTHONUNBUFFERED=1
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}  # this working tree, also before (or without) the install
status=0

step() {  # step <name> <seconds> <command line>: runs it under a time limit and records its outcome
    local name=$1 limit=$(($2 * LIMIT_FACTOR)) start=$SECONDS
    echo "=== $name (limit ${limit}s) $(date -u +%H:%M:%S)"
    timeout --kill-after=10 "$limit" bash -c "$3"
    local rc=$?
    if [ $rc -eq 124 ] || [ $rc -eq 137 ]; then
        echo "=== $name: ran out of its ${limit}s"
    fi
    echo "=== $name: exit status $rc after $((SECONDS - start))s"
    [ $rc -ne 0 ] && [ $status -eq 0 ] && status=$rc
    return 0
}

install_all() {
    local missing=() whl name
    for whl in "$WHEELS"/*.whl; do
        [ -e "$whl" ] || { echo "no wheels in $WHEELS (bash scripts/gpu_wheels.sh gathers them)"; break; }
        name=$(basename "$whl" | cut -d- -f1)
        if $PY -c 'import importlib.metadata as m, sys; m.version(sys.argv[1])' "$name" 2>/dev/null; then
            echo "already installed: $name $($PY -c 'import importlib.metadata as m, sys; print(m.version(sys.argv[1]))' "$name")"
        else
            missing+=("$whl")
        fi
    done
    if [ $DRY_RUN = 1 ]; then
        echo "dry run: would install ${missing[*]:-no wheel} and this package (pip --no-deps --no-index)"
    else
        if [ ${#missing[@]} -gt 0 ]; then
            $PY -m pip install -q --no-deps --no-index "${missing[@]}" || return 1
        fi
        $PY -m pip install -q --no-deps --no-index --no-build-isolation . || return 1
    fi
    $PY - <<'PY'
import torch
import srflow_plugin  # noqa: F401  (before basicsr)
import basicsr
print(f'torch {torch.__version__}, basicsr {basicsr.__version__}, srflow_plugin {srflow_plugin.__version__}')
if torch.cuda.is_available():
    props = torch.cuda.get_device_properties(0)
    print(f'CUDA device: {props.name}, {props.total_memory / 2**30:.1f} GiB, CUDA {torch.version.cuda}, '
          f'cuDNN {torch.backends.cudnn.version()}')
else:
    print('CUDA device: none (torch.cuda.is_available() is False)')
PY
}

cuda_tests() {
    if [ -d "$WHEELS/reference" ]; then  # the release fixtures, copied there by gpu_wheels.sh
        export SRFLOW_REFERENCE_DIR=$WHEELS/reference
    fi
    if [ $DRY_RUN = 1 ]; then  # no CUDA here: the selection only (it picks none), as on a machine without a GPU
        $PY -m pytest -q -p no:cacheprovider -m cuda tests/test_devices.py
        local rc=$?
        [ $rc -eq 5 ] && echo "(no test ran on cuda: none is selected without a GPU)" && rc=0
        return $rc
    fi
    $PY -m pytest -q -p no:cacheprovider -m cuda -rfE tests
}

if [ $DRY_RUN = 1 ]; then
    LIMIT_FACTOR=5  # the limits keep a GPU run within 8 minutes; a shared CPU may take longer for the tiny run
    DEVICE=cpu
    TRAIN=(--preset tiny --batch 2 --patch 32 --steps 1 --largest_batch 2 --threads 2 --in_process)
    SAMPLE=(--preset tiny --lr_size 8 --samples 2 --repeat 1)
else
    LIMIT_FACTOR=1
    DEVICE=cuda
    TRAIN=(--preset SRFlow_DF2K_4X --batch 12 --patch 160 --steps 3 --largest_batch 512)
    SAMPLE=(--preset SRFlow_DF2K_4X --lr_size 160 --samples 10 --repeat 1)
fi

echo "gpu_check.sh $(date -u +%Y-%m-%dT%H:%M:%SZ) on $(hostname), dry run: $DRY_RUN"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null || echo 'nvidia-smi: none'
export -f install_all cuda_tests
export DRY_RUN PY WHEELS
step install 45 install_all
step cuda-tests 150 cuda_tests
step training 240 "$PY scripts/benchmark_training.py --device $DEVICE --paths plain memory_saving bf16 fp16 ${TRAIN[*]}"
step sampling 45 "$PY scripts/benchmark_sampling.py --device $DEVICE ${SAMPLE[*]}"
echo "gpu_check.sh: done, exit status $status; log: $LOG"
exit $status
