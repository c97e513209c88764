"""scripts/gpu_check.sh --dry-run: the GPU check's every step on the CPU, with a tiny network and a few steps."""
import math
import os
import re
import subprocess
import sys
from os import path as osp

from helpers_train import REPO, subprocess_env

STEPS = ['install', 'cuda-tests', 'training', 'sampling']


def test_the_dry_run_runs_every_step_and_writes_one_log_with_every_figure(tmp_path):
    log = tmp_path / 'gpu_check.log'
    env = dict(subprocess_env(), PYTHON=sys.executable, GPU_CHECK_LOG=str(log))
    env.pop('OUT', None)
    result = subprocess.run(['bash', osp.join(REPO, 'scripts', 'gpu_check.sh'), '--dry-run'], cwd=str(tmp_path),
                            env=env, capture_output=True, text=True, timeout=900)
    text = log.read_text()
    assert result.returncode == 0, text[-3000:]
    assert result.stdout == text  # everything went to the log too
    for step in STEPS:
        assert re.search(rf'^=== {step}: exit status 0 after \d+s$', text, re.M), step
    assert 'dry run: would install' in text and 'srflow_plugin' in text  # nothing installed, the package imported
    assert '0 tests ran on cuda' in text or 'no test ran on cuda' in text
    rows = dict(re.findall(r'^  (plain|memory_saving|bf16|fp16) +([0-9.]+)s .*$', text, re.M))
    assert sorted(rows) == ['bf16', 'fp16', 'memory_saving', 'plain'] and all(float(s) > 0 for s in rows.values())
    last_nll = [float(line.split()[5]) for line in text.splitlines()
                if re.match(r'^  (plain|memory_saving|bf16|fp16) ', line)]
    assert len(last_nll) == 4 and all(math.isfinite(n) for n in last_nll)
    assert re.search(r'^    plain +2  \(the limit 2 fit, more may; 1 tries\)$', text, re.M)
    assert re.search(r'^    memory_saving +2  \(the limit 2 fit, more may; 1 tries\)$', text, re.M)
    assert re.search(r'^tiny, LR 8x8 -> SR 32x32, 2 samples at temperature 0.9 on cpu', text, re.M)
    assert re.search(r'^gpu_check\.sh: done, exit status 0; log: ', text, re.M)
    assert not os.path.exists(osp.join(str(tmp_path), 'gpu_check.log'))  # the log went where it was asked to
