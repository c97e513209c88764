"""Nothing a user points at runs code; BasicSR's own entry points on CPU; --help; fail-fast checks at model build."""
import os
import socket
import subprocess
import sys
from os import path as osp

import pytest
import torch
import yaml

from srflow_plugin import test as test_entry
from srflow_plugin import train as train_entry
from srflow_plugin.models.srflow_model import SRFlowModel
from srflow_plugin.options_schema import OptionError
from helpers.train import make_opt, subprocess_env, write_train_yml


class _Payload:
    """Unpickling this runs ``touch <marker>``."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f'touch {self.marker}', )


def _parse(monkeypatch, yml, *extra):
    from basicsr.utils.options import parse_options
    monkeypatch.setattr(sys, 'argv', ['train.py', '-opt', str(yml), *extra])
    return parse_options(str(osp.dirname(yml)), is_train=True)[0]


def test_an_option_file_cannot_run_code_through_basicsr_parse_options(tmp_path, monkeypatch):
    marker = tmp_path / 'marker'
    yml = write_train_yml(tmp_path)
    with open(yml) as f:
        text = f.read().replace('manual_seed: 0', f'manual_seed: !!python/object/apply:os.system ["touch {marker}"]')
    with open(yml, 'w') as f:
        f.write(text)
    with pytest.raises(yaml.constructor.ConstructorError, match='python/object/apply'):
        _parse(monkeypatch, yml)
    assert not marker.exists()


def test_option_files_still_parse_with_ordered_mappings_and_float_tags(tmp_path, monkeypatch):
    yml = write_train_yml(tmp_path)
    with open(yml, 'a') as f:
        f.write('extra_lr: !!float 2.5e-4\n')
    opt = _parse(monkeypatch, yml)
    assert opt['extra_lr'] == 2.5e-4 and list(opt['datasets']) == ['train', 'val']


def test_a_crafted_training_state_is_refused_without_running_code(tmp_path, monkeypatch):
    marker = tmp_path / 'marker'
    yml = write_train_yml(tmp_path)
    opt = _parse(monkeypatch, yml, '--auto_resume')
    os.makedirs(opt['path']['training_states'], exist_ok=True)
    state = osp.join(opt['path']['training_states'], '100.state')
    torch.save({'iter': 100, 'epoch': 0, 'optimizers': [], 'schedulers': [], 'x': _Payload(marker)}, state)
    with pytest.raises(ValueError, match=f'Cannot read training state {state}'):
        train_entry.load_resume_state(opt)
    assert not marker.exists()


def test_a_real_training_state_loads_with_weights_only(tmp_path, monkeypatch):
    model = SRFlowModel(make_opt(tmp_path))
    model.save(0, 3)
    opt = _parse(monkeypatch, write_train_yml(tmp_path), '--auto_resume')
    opt['path']['training_states'] = model.opt['path']['training_states']
    state = train_entry.load_resume_state(opt)
    assert state['iter'] == 3 and state['guard']['rollbacks'] == 0
    assert type(state['schedulers'][0]['milestones']).__name__ == 'Counter'


def test_help_describes_each_command_and_srflow_test_has_no_auto_resume(capsys):
    with pytest.raises(SystemExit) as code:
        train_entry.main(['--help'])
    out = capsys.readouterr().out
    assert code.value.code == 0 and 'Train an SRFlow model' in out and '--auto_resume' in out
    with pytest.raises(SystemExit) as code:
        test_entry.main(['--help'])
    out = capsys.readouterr().out
    assert code.value.code == 0 and 'Test a trained SRFlow model' in out and '--auto_resume' not in out
    with pytest.raises(SystemExit) as code:
        test_entry.main(['-opt', 'x.yml', '--auto_resume'])
    assert code.value.code == 2 and 'unrecognized arguments: --auto_resume' in capsys.readouterr().err


def test_launcher_pytorch_initialises_gloo_on_a_machine_without_cuda(tmp_path):
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        port = s.getsockname()[1]
    env = dict(subprocess_env(), RANK='0', WORLD_SIZE='1', LOCAL_RANK='0', MASTER_ADDR='127.0.0.1',
               MASTER_PORT=str(port), CUDA_VISIBLE_DEVICES='')
    code = ('import basicsr, torch.distributed as d; from basicsr.utils.dist_util import init_dist; '
            'init_dist("pytorch"); print(d.get_backend(), d.get_world_size()); d.destroy_process_group()')
    result = subprocess.run([sys.executable, '-c', code], env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == 'gloo 1'


def test_a_missing_lpips_backbone_is_an_error_at_model_build_or_skipped_when_asked(tmp_path, monkeypatch):
    monkeypatch.setenv('TORCH_HOME', str(tmp_path / 'empty_torch_home'))
    metrics = {'lpips': {'type': 'calculate_lpips', 'crop_border': 0, 'better': 'lower'},
               'psnr': {'type': 'calculate_psnr', 'crop_border': 0}}
    with pytest.raises(FileNotFoundError, match=r"'val.metrics.lpips' \(calculate_lpips\): LPIPS needs its backbone "
                                                r"weights .*alexnet-owt-7be5be79.pth"):
        SRFlowModel(make_opt(tmp_path / 'a', val={'metrics': dict(metrics)}))
    model = SRFlowModel(make_opt(tmp_path / 'b', val={'metrics': dict(metrics), 'skip_missing_metrics': True}))
    assert list(model.opt['val']['metrics']) == ['psnr']


def test_an_unknown_metric_type_is_an_error_at_model_build(tmp_path):
    with pytest.raises(OptionError, match="'val.metrics.psnr.type' = 'calculate_psnrr'"):
        SRFlowModel(make_opt(tmp_path, val={'metrics': {'psnr': {'type': 'calculate_psnrr'}}}))


def test_an_output_folder_that_cannot_be_written_is_an_error_at_model_build(tmp_path):
    blocker = tmp_path / 'not_a_folder'
    blocker.write_text('a file where the models folder should be')
    opt = make_opt(tmp_path)
    opt['path']['models'] = str(blocker / 'models')
    with pytest.raises(OSError, match=f"'path.models': cannot write into {blocker}/models"):
        SRFlowModel(opt)


def test_srflow_train_checks_dataset_paths_and_options_before_building_anything(tmp_path):
    yml = write_train_yml(tmp_path)
    with open(yml) as f:
        opt = yaml.safe_load(f)
    opt['datasets']['val']['dataroot_gt'] = str(tmp_path / 'missing_gt')
    with open(yml, 'w') as f:
        yaml.safe_dump(opt, f)
    result = subprocess.run([sys.executable, '-m', 'srflow_plugin.train', '-opt', yml], cwd=tmp_path,
                            env=subprocess_env(), capture_output=True, text=True, timeout=300)
    assert result.returncode != 0
    assert f"Option 'datasets.val.dataroot_gt': no such file or folder {tmp_path / 'missing_gt'}" in result.stderr
