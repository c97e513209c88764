"""scripts/gpu_check.sh --dry-run: the GPU check's every step on the CPU, with a tiny network and a few steps."""
import math
import re
import subprocess
import sys
from os import path as osp

from helpers.train import REPO, subprocess_env

STEPS = ['install', 'cuda-tests', 'training', 'sampling']


def test_the_dry_run_runs_every_step_and_writes_one_log_with_every_figure(tmp_path):
    log = tmp_path / 'gpu_check.log'
    env = dict(subprocess_env(), PYTHON=sys.executable, GPU_CHECK_LOG=str(log))
    env.pop('OUT', None)
    result = subprocess.run(['bash', osp.join(REPO, 'scripts', 'gpu_check.sh'), '--dry-run'], cwd=str(tmp_path),
                            env=env, capture_output=True, text=True, timeout=1800)
    text = log.read_text()
    assert result.returncode == 0, text[-3000:]
    assert result.stdout == text  # everything went to the log too
    for step in STEPS:
        assert re.search(rf'^=== {step}: exit status 0 after \d+s$', text, re.M), step
    assert 'dry run: would install' in text and 'srflow_plugin' in text  # nothing installed, the package imported
    assert '0 tests ran on cuda' in text or 'no test ran on cuda' in text
    # path, seconds per step, peak / above runtime / step memory, the NLL after the same update
    rows = re.findall(r'^  (plain|memory_saving|bf16|fp16) +([0-9.]+)s +(?:[-0-9.]+ GiB +){3}(\S+) ', text, re.M)
    assert [path for path, _, _ in rows] == ['plain', 'memory_saving', 'bf16', 'fp16']
    assert all(float(seconds) > 0 and math.isfinite(float(nll)) for _, seconds, nll in rows), rows
    assert re.search(r'^    plain +2  \(the limit 2 fit, more may; 1 tries\)$', text, re.M)
    assert re.search(r'^    memory_saving +2  \(the limit 2 fit, more may; 1 tries\)$', text, re.M)
    assert re.search(r'^tiny, LR 8x8 -> SR 32x32, 2 samples at temperature 0.9 on cpu', text, re.M)
    assert re.search(r'^gpu_check\.sh: done, exit status 0; log: ', text, re.M)
