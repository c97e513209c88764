"""Training, resuming and testing through BasicSR's pipelines, in subprocesses like a user runs them."""
import csv
import glob
import math
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from os import path as osp

import pytest
import torch

from helpers.train import subprocess_env, write_test_yml, write_train_yml


def run(args, cwd, timeout=240):
    result = subprocess.run([sys.executable] + args, cwd=str(cwd), env=subprocess_env(), capture_output=True,
                            text=True, timeout=timeout)
    assert result.returncode == 0, f'{args} failed:\n{result.stdout[-3000:]}\n{result.stderr[-5000:]}'
    return result


def names(folder):
    return sorted(os.listdir(folder))


@pytest.fixture(scope='module')
def trained(tmp_path_factory):
    """One tiny training run of 6 iterations (checkpoints every 2, validation at the end)."""
    root = tmp_path_factory.mktemp('train')
    yml = write_train_yml(root, name='tiny', total_iter=6, save_every=2)
    result = run(['-m', 'srflow_plugin.train', '-opt', yml], cwd=root)
    return root, result


def test_training_writes_checkpoints_and_states_under_the_cwd(trained):
    root, _ = trained
    exp = osp.join(root, 'experiments', 'tiny')
    assert names(osp.join(exp, 'models')) == ['net_g_2.pth', 'net_g_4.pth', 'net_g_6.pth', 'net_g_latest.pth']
    assert names(osp.join(exp, 'training_states')) == ['2.state', '4.state', '6.state']


def test_training_validates_at_every_temperature_and_sample(trained):
    root, _ = trained
    images = names(osp.join(root, 'experiments', 'tiny', 'visualization', 'img000'))
    # BasicSR's loop leaves current_iter at total_iter + 1 for the validation after training
    assert images == ['img000_7_t0.8_s0.png', 'img000_7_t0.8_s1.png', 'img000_7_t0_s0.png']
    log = open(glob.glob(osp.join(root, 'experiments', 'tiny', 'train_tiny_*.log'))[0]).read()
    assert '# psnr_t0.8:' in log and '# nll:' in log and 'skipped_steps: 0' in log


def test_test_pipeline_writes_images_and_a_metric_csv(trained):
    root, _ = trained
    yml = write_test_yml(root, osp.join(root, 'experiments', 'tiny', 'models', 'net_g_latest.pth'))
    result = run(['-m', 'srflow_plugin.test', '-opt', yml], cwd=root)
    results = osp.join(root, 'results', 'tiny_test')
    assert len(names(osp.join(results, 'visualization', 'tinyset'))) == 2 * 3  # 2 images x (1 + 2 samples)
    with open(osp.join(results, 'metrics_tinyset.csv')) as f:
        rows = list(csv.DictReader(f))
    assert [r['image'] for r in rows] == ['img000', 'img000', 'img001', 'img001', 'mean', 'mean']
    assert all(0 < float(r['psnr']) < 60 and math.isfinite(float(r['nll'])) for r in rows)
    log = open(glob.glob(osp.join(results, 'test_tiny_test_*.log'))[0]).read()
    assert 'heat' in log and 'lr_psnr' in log  # the metric table
    assert 'Traceback' not in result.stderr


def test_auto_resume_after_a_killed_run_reaches_the_final_iteration(tmp_path):
    yml = write_train_yml(tmp_path, name='killed', total_iter=100000, save_every=3)
    states = osp.join(tmp_path, 'experiments', 'killed', 'training_states')
    proc = subprocess.Popen([sys.executable, '-m', 'srflow_plugin.train', '-opt', yml], cwd=str(tmp_path),
                            env=subprocess_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 180
        while not (osp.isdir(states) and '6.state' in os.listdir(states)):
            assert proc.poll() is None and time.time() < deadline, 'training stopped before its 2nd checkpoint'
            time.sleep(0.2)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    # a kill can interrupt a write, but only ever of a temporary file: every state under its final name is complete
    saved = sorted(int(n[:-len('.state')]) for n in os.listdir(states) if n.endswith('.state'))
    for iteration in saved:
        assert torch.load(osp.join(states, f'{iteration}.state'), weights_only=False)['iter'] == iteration
    last = saved[-1]
    final = last + 3  # the next checkpoint iteration
    run(['-m', 'srflow_plugin.train', '-opt', yml, '--auto_resume', '--force_yml', f'train:total_iter={final}'],
        cwd=tmp_path)  # run() asserts exit status 0
    log_files = glob.glob(osp.join(tmp_path, 'experiments', 'killed', 'train_killed_*.log'))
    resumed_log = [open(f).read() for f in log_files if 'Resuming training' in open(f).read()]
    assert len(resumed_log) == 1 and f'iter: {last}.' in resumed_log[0]
    assert f'net_g_{final}.pth' in names(osp.join(tmp_path, 'experiments', 'killed', 'models'))
    assert 'net_g_latest.pth' in names(osp.join(tmp_path, 'experiments', 'killed', 'models'))


def test_basicsr_own_train_entry_point_finds_the_plugin(tmp_path):
    # BasicSR's train.py puts experiments/ next to the basicsr package (its root_path), not under the cwd
    import basicsr
    name = f'srflow_hook_{uuid.uuid4().hex[:8]}'
    exp = osp.join(osp.dirname(osp.dirname(osp.abspath(basicsr.__file__))), 'experiments', name)
    yml = write_train_yml(tmp_path, name=name, total_iter=2, save_every=2)
    try:
        run(['-m', 'basicsr.train', '-opt', yml], cwd=tmp_path)
        assert names(osp.join(exp, 'models')) == ['net_g_2.pth', 'net_g_latest.pth']
    finally:
        shutil.rmtree(exp, ignore_errors=True)
        if osp.isdir(osp.dirname(exp)) and not os.listdir(osp.dirname(exp)):
            os.rmdir(osp.dirname(exp))


def test_basicsr_own_test_entry_point_finds_the_plugin(trained):
    # like basicsr.train, BasicSR's test.py writes results/ next to the basicsr package
    import basicsr
    root, _ = trained
    name = f'srflow_hook_test_{uuid.uuid4().hex[:8]}'
    results = osp.join(osp.dirname(osp.dirname(osp.abspath(basicsr.__file__))), 'results', name)
    yml = write_test_yml(root, osp.join(root, 'experiments', 'tiny', 'models', 'net_g_latest.pth'), name=name)
    try:
        run(['-m', 'basicsr.test', '-opt', yml], cwd=root)
        assert len(names(osp.join(results, 'visualization', 'tinyset'))) == 2 * 3
        with open(osp.join(results, 'metrics_tinyset.csv')) as f:
            assert [r['image'] for r in csv.DictReader(f)][-2:] == ['mean', 'mean']
    finally:
        shutil.rmtree(results, ignore_errors=True)
        if osp.isdir(osp.dirname(results)) and not os.listdir(osp.dirname(results)):
            os.rmdir(osp.dirname(results))


def test_start_up_hook_does_not_import_torch_in_unrelated_processes(tmp_path):
    result = run(['-c', "import sys; import json; print('torch' in sys.modules)"], cwd=tmp_path)
    assert result.stdout.strip() == 'False'


def test_unknown_option_stops_training_with_a_message_naming_it(tmp_path):
    yml = write_train_yml(tmp_path, name='typo', total_iter=2, train_rrdb_dealy=0.5)
    result = subprocess.run([sys.executable, '-m', 'srflow_plugin.train', '-opt', yml], cwd=str(tmp_path),
                            env=subprocess_env(), capture_output=True, text=True, timeout=120)
    assert result.returncode != 0
    assert "Unknown option 'train.train_rrdb_dealy'" in result.stderr and 'train_rrdb_delay' in result.stderr
