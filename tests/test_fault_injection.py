"""One tiny training run through every fault at once: a NaN batch, a full disk at a save, a kill -9 during a save.

The run is restarted with ``--auto_resume`` after each fault, as a user would. It must end with exactly the model
(weights, Adam state, counters) of an undisturbed run from the last good checkpoint on: the resume continues the
epoch's data and the random generators where they stopped (``srflow_plugin.utils.resume``), so being killed and
resumed changes nothing.
"""
import glob
import os
import re
import shutil
import signal
import subprocess
import sys
from os import path as osp

import torch

from helpers.devices import num_gpu
from helpers.train import REPO, subprocess_env, write_train_yml

TESTS = osp.dirname(osp.abspath(__file__))
NAME = 'faulty'
TOTAL_ITER = 12  # 4 images, batch 2: 2 iterations per epoch; a checkpoint every 2 iterations


def train(cwd, *args, faults=''):
    env = subprocess_env()
    env['PYTHONPATH'] = os.pathsep.join([REPO, TESTS, env.get('PYTHONPATH', '')])
    env['SRFLOW_FAULTS'] = faults
    return subprocess.run([sys.executable, '-m', 'helpers.fault_injection', '-opt', osp.join(str(cwd), f'{NAME}.yml'),
                           *args], cwd=str(cwd), env=env, capture_output=True, text=True, timeout=300)


def folder(root, sub):
    return osp.join(str(root), 'experiments', NAME, sub)


def listing(root, sub):
    return sorted(os.listdir(folder(root, sub)))


def read(path):
    return torch.load(path, weights_only=True)


def log_text(root):
    return ''.join(open(f).read() for f in sorted(glob.glob(osp.join(folder(root, ''), f'train_{NAME}_*.log'))))


def assert_same(a, b, where=''):
    """Nested dicts / lists of tensors and numbers, exactly equal."""
    if torch.is_tensor(a):
        assert torch.equal(a, b), f'{where} differs (max |diff| {(a.float() - b.float()).abs().max():.3g})'
    elif isinstance(a, dict):
        assert a.keys() == b.keys(), where
        for key in a:
            assert_same(a[key], b[key], f'{where}.{key}')
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            assert_same(x, y, f'{where}[{i}]')
    else:
        assert a == b, f'{where}: {a} != {b}'


def test_nan_batch_full_disk_and_kill_end_identical_to_an_undisturbed_run_from_the_last_good_checkpoint(
        tmp_path, device):
    # on CUDA the runs use deterministic kernels (helpers/fault_injection.py), so that two runs can be bit-identical
    disturbed, reference = tmp_path / 'disturbed', tmp_path / 'reference'
    disturbed.mkdir()
    write_train_yml(disturbed, name=NAME, total_iter=TOTAL_ITER, save_every=2, num_gpu=num_gpu(device))

    # 1. a NaN pixel at iteration 3 is skipped; at iteration 6 the disk is full: the run stops naming the file
    first = train(disturbed, faults='nan_batch=3,disk_full=6')
    assert first.returncode != 0
    assert 'No space left on device' in first.stderr
    assert f'Cannot write {folder(disturbed, "models")}/net_g_6.pth' in first.stderr
    assert 'Iteration 3: non-finite loss or gradient, step skipped (1 skipped so far)' in log_text(disturbed)
    assert listing(disturbed, 'models') == ['net_g_2.pth', 'net_g_4.pth']  # nothing half-written
    assert listing(disturbed, 'training_states') == ['2.state', '4.state']
    state_4 = read(osp.join(folder(disturbed, 'training_states'), '4.state'))
    assert state_4['skipped_steps'] == 1
    weights_4 = read(osp.join(folder(disturbed, 'models'), 'net_g_4.pth'))['params']
    assert all(bool(torch.isfinite(w).all()) for w in weights_4.values() if w.is_floating_point())
    # the last good checkpoint before the full disk and the kill: where the undisturbed run starts
    for sub, name in (('models', 'net_g_4.pth'), ('training_states', '4.state')):
        os.makedirs(folder(reference, sub))
        shutil.copy(osp.join(folder(disturbed, sub), name), folder(reference, sub))
    shutil.copy(osp.join(str(disturbed), f'{NAME}.yml'), str(reference))  # it names the same image folders

    # 2. space freed, resumed from 4; killed with SIGKILL while writing the checkpoint of iteration 10
    second = train(disturbed, '--auto_resume', faults='kill=10')
    assert second.returncode == -signal.SIGKILL
    assert 'Resuming training from epoch: 1, iter: 4.' in log_text(disturbed)
    leftovers = [n for n in listing(disturbed, 'models') if '.tmp' in n]
    assert len(leftovers) == 1 and re.fullmatch(r'net_g_10\.pth\.tmp\d+', leftovers[0]), leftovers
    assert listing(disturbed, 'training_states') == ['2.state', '4.state', '6.state', '8.state']
    assert read(osp.join(folder(disturbed, 'training_states'), '8.state'))['skipped_steps'] == 1

    # 3. resumed again: the kill's temporary file is removed and the run reaches the end
    third = train(disturbed, '--auto_resume')
    assert third.returncode == 0, third.stderr[-3000:]
    assert 'Removed 1 temporary file(s) of an interrupted save' in log_text(disturbed)
    assert [n for n in listing(disturbed, 'models') if '.tmp' in n] == []

    assert 'Resuming training from epoch: 3, iter: 8.' in log_text(disturbed)

    # the undisturbed run from the last good checkpoint on: 4 -> 12 in one go
    undisturbed = train(reference, '--auto_resume')
    assert undisturbed.returncode == 0, undisturbed.stderr[-3000:]
    assert log_text(reference).count('Resuming training') == 1

    for name in (f'net_g_{TOTAL_ITER}.pth', 'net_g_latest.pth'):
        assert_same(read(osp.join(folder(disturbed, 'models'), name)),
                    read(osp.join(folder(reference, 'models'), name)), name)
    final_state = read(osp.join(folder(disturbed, 'training_states'), f'{TOTAL_ITER}.state'))
    assert_same(final_state, read(osp.join(folder(reference, 'training_states'), f'{TOTAL_ITER}.state')), 'state')
    assert final_state['iter'] == TOTAL_ITER and final_state['skipped_steps'] == 1
