"""Nothing of the user's lost or overwritten, nothing written outside its folder, no input that exhausts the machine:
one shared mechanism per class, and every console command walked through the path guard."""
import os
import re
import socket
import subprocess
import sys
from os import path as osp

import cv2
import lmdb
import numpy as np
import pytest
import torch
import yaml

from srflow_plugin.entry import checked_parse_options
from srflow_plugin.inference import measuring, sampling
from srflow_plugin.inference.loading import load_srflow
from srflow_plugin.models import preflight
from srflow_plugin.models.srflow_model import SRFlowModel
from srflow_plugin.options_schema import OptionError, check_options
from srflow_plugin.tools import compare, convert, latent, measure, prepare_data
from srflow_plugin.tools import sample as sample_tool
from srflow_plugin.utils.checkpoint import remove_stale_temporaries, save_srflow
from srflow_plugin.utils.lmdb_check import check_lmdb
from srflow_plugin.utils.option_file import MAX_OPTION_VALUES
from srflow_plugin.utils.run_lock import hold_folder, lock_path, release_folder
from helpers.tiny import TINY, tiny_net, write_image
from helpers.train import REPO, make_opt, subprocess_env, write_pairs, write_train_yml

pytestmark = pytest.mark.usefixtures('single_thread')


def _dead_pid():
    process = subprocess.Popen([sys.executable, '-c', 'pass'])
    process.wait()
    return process.pid


def _parse(monkeypatch, yml, prog='srflow-train', *extra):
    """srflow-train's (or srflow-test's) parsing and checks of an option file, in this process."""
    from basicsr.utils.options import parse_options
    monkeypatch.setattr(sys, 'argv', [prog, '-opt', str(yml), *extra])
    return checked_parse_options(parse_options, prog)(str(osp.dirname(yml)), prog == 'srflow-train')[0]


def _edit_yml(yml, edit):
    with open(yml) as f:
        opt = yaml.safe_load(f)
    edit(opt)
    with open(yml, 'w') as f:
        yaml.safe_dump(opt, f, sort_keys=False)
    return yml


# ---------------------------------------------------------------------------------------------------- 1. ownership
def test_srflow_sample_refuses_to_write_into_its_input_folder_and_keeps_the_input(pair, tmp_path, capsys):
    folder = tmp_path / 'in'
    folder.mkdir()
    original = write_image(folder / '1_t0_s0.png', 8, 8, seed=5)
    code = sample_tool.cli(['-i', str(folder), '-c', str(pair / 'tiny.pth'), '-o', str(folder), '--temperatures', '0'])
    assert code == 1
    assert f'Output -o {folder} is the input -i {folder}' in capsys.readouterr().err
    assert os.listdir(folder) == ['1_t0_s0.png'] and np.array_equal(cv2.imread(str(folder / '1_t0_s0.png')), original)


def test_a_live_run_holds_its_folder_and_a_dead_runs_lock_is_taken_over(tmp_path):
    folder = tmp_path / 'experiments' / 'run'
    lock = lock_path(folder)
    os.makedirs(osp.dirname(lock))
    with open(lock, 'w') as f:
        f.write(f'{os.getppid()} {socket.gethostname()}\n')  # a live process other than this one
    with pytest.raises(RuntimeError, match=f'Experiment folder {folder} is in use by process {os.getppid()}'):
        hold_folder(str(folder), 'Experiment folder')
    with open(lock, 'w') as f:
        f.write(f'{_dead_pid()} {socket.gethostname()}\n')
    assert hold_folder(str(folder)) == lock
    assert open(lock).read().split()[0] == str(os.getpid())
    release_folder(str(folder))
    assert not osp.exists(lock)


def test_srflow_train_refuses_an_experiment_name_that_a_live_run_holds_before_archiving_anything(tmp_path):
    yml = write_train_yml(tmp_path, name='busy')
    experiment = tmp_path / 'experiments' / 'busy'
    (experiment / 'models').mkdir(parents=True)
    (experiment / 'models' / 'net_g_2.pth').write_bytes(b'the other run')
    with open(lock_path(experiment), 'w') as f:
        f.write(f'{os.getpid()} {socket.gethostname()}\n')  # this test process plays the other run
    result = subprocess.run([sys.executable, '-m', 'srflow_plugin.train', '-opt', yml], cwd=tmp_path,
                            env=subprocess_env(), capture_output=True, text=True, timeout=300)
    assert result.returncode == 1
    assert f'srflow-train: error: Experiment folder {experiment} is in use by process {os.getpid()}' in result.stderr
    assert sorted(os.listdir(tmp_path / 'experiments')) == ['busy', 'busy.lock']  # nothing archived
    assert (experiment / 'models' / 'net_g_2.pth').read_bytes() == b'the other run'


def test_only_the_temporaries_of_atomic_save_are_removed_at_start(tmp_path):
    dead = _dead_pid()
    for name in (f'net_g_4.pth.tmp{dead}', f'8.state.tmp{dead}', f'best_run_notes.tmp{dead}', 'notes.tmp2024'):
        (tmp_path / name).write_text('x')
    removed = remove_stale_temporaries(str(tmp_path))
    assert sorted(osp.basename(p) for p in removed) == [f'8.state.tmp{dead}', f'net_g_4.pth.tmp{dead}']
    assert sorted(os.listdir(tmp_path)) == sorted([f'best_run_notes.tmp{dead}', 'notes.tmp2024'])


# ---------------------------------------------------------------------------------------------------- 2. containment
def test_a_dataset_name_that_leaves_the_results_folder_is_refused(tmp_path, monkeypatch):
    yml = _edit_yml(write_train_yml(tmp_path),
                    lambda opt: opt['datasets']['val'].update(name='../../../../escaped_ds'))
    with pytest.raises(SystemExit, match=r"Option 'datasets.val.name' = '../../../../escaped_ds': must be one file or "
                                         'folder name'):
        _parse(monkeypatch, yml, 'srflow-test')
    assert not (tmp_path / 'results').exists()


@pytest.mark.parametrize('key, value', [('name', 'a/b'), ('name', '..')])
def test_an_experiment_name_is_one_folder_name(tmp_path, monkeypatch, key, value):
    yml = _edit_yml(write_train_yml(tmp_path), lambda opt: opt.update({key: value}))
    with pytest.raises(SystemExit, match=f"Option '{key}' = '{re.escape(value)}'"):
        _parse(monkeypatch, yml)


def test_a_test_suffix_is_one_file_name():
    with pytest.raises(OptionError, match=r"Option 'val.suffix' = '../x'"):
        check_options({'model_type': 'SRFlowModel', 'is_train': False, 'val': {'suffix': '../x'}})


# ---------------------------------------------------------------------------------------------------- 3. weights only
class _Payload:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f'touch {self.marker}', )


def test_pretrain_network_g_is_read_weights_only_even_when_torch_is_told_otherwise(tmp_path, monkeypatch):
    from basicsr.models.base_model import BaseModel

    from srflow_plugin.utils.checkpoint import load_network_weights_only
    marker = tmp_path / 'marker'
    crafted = tmp_path / 'crafted.pth'
    torch.save({'params': {'x': _Payload(marker)}}, crafted)
    monkeypatch.setenv('TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD', '1')
    assert BaseModel.load_network is load_network_weights_only  # every BasicSR model, SRModel included
    with pytest.raises(ValueError, match=f'Cannot read checkpoint {crafted}'):
        SRFlowModel(make_opt(tmp_path, path={'pretrain_network_g': str(crafted)}))
    assert not marker.exists()


# ---------------------------------------------------------------------------------------------------- 4. silent errors
def test_measure_refuses_the_samples_of_several_iterations_as_one_image(pair, tmp_path):
    for iteration in (2, 4):
        for k in range(2):
            write_image(tmp_path / 'visualization' / f'0801_{iteration}_t0.8_s{k}.png', 32, 40, seed=k)
    with pytest.raises(ValueError, match=r"SR files of 0801 come from 2 iterations or runs \('2', '4'"):
        measuring.measure(str(tmp_path / 'visualization'), str(pair / 'gt'), scale=4, use_lpips=False, verbose=False,
                          temperature=0.8)


def test_a_key_given_twice_in_an_option_file_is_refused(tmp_path, monkeypatch):
    yml = write_train_yml(tmp_path)
    with open(yml) as f:
        text = f.read()
    with open(yml, 'w') as f:
        f.write(text.replace('  total_iter: 6\n', '  total_iter: 6\n  total_iter: 4\n'))
    with pytest.raises(SystemExit, match=f"Option file {yml}, line \\d+: key 'total_iter' is given twice"):
        _parse(monkeypatch, yml)


def test_an_option_file_that_differs_from_the_checkpoints_layout_is_warned_about(pair, basicsr_messages):
    load_srflow(str(pair / 'tiny.pth'), {'network_g': {'type': 'SRFlowNet', **TINY, 'trunk_skip': 'trunk'}})
    assert any("was written with network_g.trunk_skip = None, but the options give 'trunk'" in m
               for m in basicsr_messages)


def test_training_checkpoints_store_their_layout_and_a_differing_one_is_warned_about(tmp_path, basicsr_messages):
    model = SRFlowModel(make_opt(tmp_path / 'a'))
    model.save(0, 1)
    saved = osp.join(model.opt['path']['models'], 'net_g_1.pth')
    assert torch.load(saved, weights_only=True)['network_g']['flow_steps'] == 1
    opt = make_opt(tmp_path / 'b', path={'pretrain_network_g': saved, 'strict_load_g': False})
    opt['network_g']['trunk_skip'] = 'trunk'
    SRFlowModel(opt)
    assert any(f"{saved} was written with network_g.trunk_skip = None, but the options give 'trunk'" in m
               for m in basicsr_messages)


def test_esrgan_weights_in_a_trunk_skip_encoder_are_warned_about(tmp_path, basicsr_messages):
    from srflow_plugin.archs import SRFlowRRDBNet, load_encoder_weights
    esrgan = SRFlowRRDBNet(num_feat=8, num_block=1, num_grow_ch=4)
    torch.save({'params_ema': esrgan.state_dict()}, tmp_path / 'esrgan.pth')
    load_encoder_weights(SRFlowRRDBNet(num_feat=8, num_block=1, num_grow_ch=4, trunk_skip='trunk'),
                         str(tmp_path / 'esrgan.pth'))
    assert any("esrgan.pth was trained with trunk_skip: conv_first (it uses BasicSR's (ESRGAN's) names)" in m
               for m in basicsr_messages)


def test_non_finite_weights_are_an_error_naming_the_parameter(tmp_path):
    net = tiny_net()
    with torch.no_grad():
        net.encoder.conv_first.weight[0, 0, 0, 0] = float('nan')
    save_srflow(net, str(tmp_path / 'nan.pth'), {'type': 'SRFlowNet', **TINY})
    with pytest.raises(ValueError, match=r'parameter encoder.conv_first.weight holds 1 non-finite value\(s\)'):
        load_srflow(str(tmp_path / 'nan.pth'))
    with pytest.raises(ValueError, match='parameter encoder.conv_first.weight holds 1 non-finite'):
        SRFlowModel(make_opt(tmp_path, network_g={'type': 'SRFlowNet', **TINY},
                             path={'pretrain_network_g': str(tmp_path / 'nan.pth')}))


# ---------------------------------------------------------------------------------------------------- 5. exhaustion
def test_an_alias_bomb_is_refused_when_the_option_file_is_read(tmp_path, monkeypatch):
    yml = write_train_yml(tmp_path)
    bomb = 'lol0: &l0 [x, x, x, x, x, x, x, x, x]\n' + ''.join(
        f'lol{i}: &l{i} [' + ', '.join([f'*l{i - 1}'] * 9) + ']\n' for i in range(1, 9))
    with open(yml, 'a') as f:
        f.write(bomb)
    with pytest.raises(SystemExit, match=f'Option file {yml}: its aliases expand to \\d+ values \\(at most '
                                         f'{MAX_OPTION_VALUES}'):
        _parse(monkeypatch, yml)


def test_srflow_sample_writes_samples_while_it_samples_in_bounded_batches(pair, tmp_path, monkeypatch):
    decoded, at_first_write = [], []
    real_decode = type(tiny_net()).decode

    def counting_decode(self, *args, **kwargs):
        decoded.append(1)
        return real_decode(self, *args, **kwargs)

    def write(img, path):
        at_first_write.append(len(decoded)) if not at_first_write else None
        cv2.imwrite(path, img)

    monkeypatch.setattr(type(tiny_net()), 'decode', counting_decode)
    monkeypatch.setattr(sample_tool, 'write_image', write)
    monkeypatch.setattr(sampling, 'SAMPLE_BATCH_BYTES', 1)  # one output at a time
    sample_tool.main(['-i', str(pair / 'lr'), '-c', str(pair / 'tiny.pth'), '-o', str(tmp_path / 'o'),
                      '--temperatures', '0.8', '--num_samples', '20'])
    assert len(decoded) == 20 and at_first_write == [1] and len(os.listdir(tmp_path / 'o')) == 20


def test_streamed_samples_are_the_samples_of_sample_image(pair, monkeypatch):
    net = load_srflow(str(pair / 'tiny.pth'))
    lq = torch.rand(1, 3, 8, 10, generator=torch.Generator().manual_seed(0))
    whole = sampling.sample_image(net, lq, [0.0, 0.5, 0.8], 3, torch.Generator().manual_seed(1))
    monkeypatch.setattr(sampling, 'SAMPLE_BATCH_BYTES', 1)
    streamed = dict(sampling.iter_samples(net, lq, [0.0, 0.5, 0.8], 3, torch.Generator().manual_seed(1)))
    assert sorted(streamed) == sorted(whole)
    assert all(torch.equal(streamed[key], whole[key]) for key in whole)


def _lmdb(tmp_path):
    gt, _ = write_pairs(tmp_path / 'pngs', 3, 32)
    out = prepare_data.prepare(gt, str(tmp_path / 'data'), crop_size=0, name='set')
    return out['gt_lmdb']


def test_a_truncated_lmdb_is_an_error_naming_it_not_a_bus_error(tmp_path):
    path = _lmdb(tmp_path)
    assert check_lmdb(path) == 3
    data = osp.join(path, 'data.mdb')
    with open(data, 'r+b') as f:
        f.truncate(osp.getsize(data) // 2)
    with pytest.raises(OSError, match=f'LMDB {path}: data.mdb is truncated'):
        check_lmdb(path)


def test_corrupt_bytes_of_one_image_in_an_lmdb_name_the_lmdb_and_the_key_when_the_dataset_is_built(tmp_path):
    path = _lmdb(tmp_path)
    env = lmdb.open(path, map_size=2**26)
    with env.begin(write=True) as txn:
        value = bytearray(txn.get(b'img001'))
        value[len(value) // 2] ^= 0xFF
        txn.put(b'img001', bytes(value))
    env.close()
    opt = {'datasets': {'train': {'name': 'set', 'io_backend': {'type': 'lmdb'}, 'dataroot_gt': path}}}
    with pytest.raises(ValueError, match=f"LMDB {path}: the bytes of key 'img001' do not match checksums.txt"):
        preflight.check_lmdbs(opt)


# ---------------------------------------------------------------------------------------------------- 6. one line
def test_gt_size_must_be_a_multiple_of_the_scale(tmp_path, monkeypatch):
    yml = _edit_yml(write_train_yml(tmp_path), lambda opt: opt['datasets']['train'].update(gt_size=102))
    with pytest.raises(SystemExit, match=r"Option 'datasets.train.gt_size' = 102: must be a multiple of scale 4"):
        _parse(monkeypatch, yml)


@pytest.mark.parametrize('text, message', [
    ('', 'is empty: it must be a mapping of options'),
    ('- a\n- b\n', 'holds a list, not a mapping of options'),
    ('7\n', 'holds the single value 7, not a mapping of options')])
def test_an_option_file_that_is_not_a_mapping_is_one_line(tmp_path, monkeypatch, text, message):
    yml = tmp_path / 'bad.yml'
    yml.write_text(text)
    with pytest.raises(SystemExit) as error:
        _parse(monkeypatch, yml)
    assert str(error.value) == f'srflow-train: error: Option file {yml} {message} (name: ..., network_g: ...).'


def test_an_unknown_network_g_key_and_an_empty_checkpoint_are_one_line(pair, tmp_path, capsys):
    opt = tmp_path / 'net.yml'
    opt.write_text(yaml.safe_dump({'network_g': {'type': 'SRFlowNet', **TINY, 'flow_stepz': 2}}))
    base = ['-i', str(pair / 'lr'), '-o', str(tmp_path / 'o')]
    assert sample_tool.cli(base + ['-c', str(pair / 'tiny.pth'), '--opt', str(opt)]) == 1
    assert f"network_g of {opt} does not build an SRFlowNet: " in capsys.readouterr().err
    (tmp_path / 'zero.pth').write_bytes(b'')
    assert sample_tool.cli(base + ['-c', str(tmp_path / 'zero.pth')]) == 1
    assert capsys.readouterr().err == (f'srflow-sample: error: Cannot read checkpoint {tmp_path / "zero.pth"}: the '
                                       'file is empty (0 bytes).\n')


def test_validation_heats_that_collide_in_file_names_are_refused():
    with pytest.raises(OptionError, match=r"Option 'val.heats' .*repeats a temperature as written in file names "
                                          r'\(0.5 0.5\)'):
        check_options({'model_type': 'SRFlowModel', 'is_train': False, 'val': {'heats': [0.5, 0.50000001]}})


def test_grids_of_sampling_into_the_current_folder_go_beside_it(pair, tmp_path, monkeypatch):
    (tmp_path / 'out').mkdir()
    monkeypatch.chdir(tmp_path / 'out')
    sample_tool.main(['-i', str(pair / 'lr'), '-c', str(pair / 'tiny.pth'), '-o', '.', '--temperatures', '0',
                      '--grid'])
    assert sorted(os.listdir('.')) == ['0801_t0_s0.png'] and os.listdir(tmp_path / 'out_grids') == ['0801_grid.png']
    with pytest.raises(ValueError, match='Outputs -o .* and --grid_dir .*grids overlap'):
        sample_tool.main(['-i', str(pair / 'lr'), '-c', str(pair / 'tiny.pth'), '-o', '.', '--grid', '--grid_dir',
                          'grids'])


def test_a_missing_gt_of_a_grid_is_an_error_before_sampling(pair, tmp_path):
    (tmp_path / 'gt').mkdir()
    with pytest.raises(FileNotFoundError, match=f'No GT image for 0801 in {tmp_path / "gt"}'):
        sample_tool.main(['-i', str(pair / 'lr'), '-c', str(pair / 'tiny.pth'), '-o', str(tmp_path / 'o'), '--grid',
                          '--gt', str(tmp_path / 'gt')])
    assert not (tmp_path / 'o').exists()


def test_an_empty_transfer_box_is_refused(pair, capsys):
    with pytest.raises(SystemExit) as code:
        latent.parse_args(['transfer', '--source', 'a.png', '--target', 'b.png', '--box', '0', '0', '0', '0', '-c',
                           'x.pth', '-o', 'out'])
    assert code.value.code == 2 and '--box 0 0 0 0: X and Y must be >= 0 and W and H > 0' in capsys.readouterr().err


# ---------------------------------------------------------------------------------------------------- the path guard
def _console_commands():
    with open(osp.join(REPO, 'setup.py')) as f:
        return set(re.findall(r"'(srflow-[a-z-]+) = ", f.read()))


def test_every_console_command_refuses_an_output_inside_its_input(pair, tmp_path, monkeypatch, capsys):
    inside = tmp_path / 'lr_copy'
    write_image(inside / '0801x4.png', 8, 10, seed=3)
    refused = {}

    def tool(name, cli, argv):
        refused[name] = (cli(argv), capsys.readouterr().err)

    tool('srflow-sample', sample_tool.cli, ['-i', str(inside), '-c', str(pair / 'tiny.pth'), '-o', str(inside / 'o')])
    tool('srflow-latent', latent.cli, ['sweep', '-i', str(inside / '0801x4.png'), '-c', str(pair / 'tiny.pth'), '-o',
                                       str(inside)])
    tool('srflow-measure', measure.cli, ['--sr', str(pair / 'gt'), '--gt', str(pair / 'gt'), '--scale', '4',
                                         '--no_lpips', '--csv', str(pair / 'gt' / 'metrics.csv')])
    photos = tmp_path / 'D' / 'photos_mod4'  # srflow-prepare-data --name photos --crop_size 0 writes D/photos_mod4
    write_image(photos / 'a.png', 16, 16)
    tool('srflow-prepare-data', prepare_data.cli, ['--input', str(photos), '--output', str(tmp_path / 'D'), '--name',
                                                   'photos', '--crop_size', '0', '--overwrite'])
    tool('srflow-convert', convert.cli, [str(pair / 'tiny.pth'), '-o', str(pair / 'tiny.pth')])
    tool('srflow-compare', compare.cli, ['--gt', str(pair / 'gt'), '--lr', str(inside), '--out', str(inside / 'cmp'),
                                         '--model', f'a={pair / "gt"}'])
    for prog in ('srflow-train', 'srflow-test'):
        yml = write_train_yml(tmp_path / prog, name='run')
        runs = tmp_path / prog / ('experiments' if prog == 'srflow-train' else 'results') / 'run'
        gt, lq = write_pairs(runs / 'data', 1, 32)  # a dataset inside the run's own folder
        _edit_yml(yml, lambda opt: opt['datasets']['val'].update(dataroot_gt=gt, dataroot_lq=lq))
        with pytest.raises(SystemExit) as error:
            _parse(monkeypatch, yml, prog)
        refused[prog] = (1, str(error.value))
    refused['srflow-complexity'] = (None, 'writes no file')  # it prints a table only
    assert set(refused) == _console_commands()
    for name, (code, message) in refused.items():
        if name != 'srflow-complexity':
            assert code == 1 and re.search(r'Output .* (is|lies inside|contains) the input ', message), (name, message)
    assert sorted(os.listdir(inside)) == ['0801x4.png'] and os.listdir(photos) == ['a.png']
    assert osp.isfile(pair / 'tiny.pth')
    assert not osp.exists(pair / 'gt' / 'metrics.csv')


def test_an_image_too_large_for_the_memory_is_refused_before_sampling_naming_a_tile_that_fits(pair, tmp_path,
                                                                                              monkeypatch, capsys):
    from srflow_plugin.inference import tiling
    write_image(tmp_path / 'big' / 'big.png', 300, 300)
    net = load_srflow(str(pair / 'tiny.pth'))
    per_pixel = tiling.condition_bytes_per_pixel(net)
    # enough for the HR buffers and a 128-tile's condition, not for the whole image's condition
    budget = int(tiling.HR_BYTES_PER_PIXEL * 1200**2 + per_pixel * (128 + 2 * 32)**2 * 1.1)
    monkeypatch.setattr(tiling, 'available_memory', lambda device: budget)
    monkeypatch.setattr(sample_tool, 'iter_samples', lambda *a, **k: pytest.fail('sampled before the check'))
    assert sample_tool.cli(['-i', str(tmp_path / 'big'), '-c', str(pair / 'tiny.pth'), '-o', str(tmp_path / 'o')]) == 1
    err = capsys.readouterr().err
    assert re.search(r'big.png \(300x300\): sampling it untiled needs at least [\d.]+ GiB on cpu, [\d.]+ GiB are '
                     r'available; --tile 128 fits\.', err), err
    assert not (tmp_path / 'o').exists()
