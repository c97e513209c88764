"""What validation, srflow-sample, srflow-measure and srflow-prepare-data share, seen from the user's side: one
naming and seeding rule (the same seed gives the same picture in validation and srflow-sample, and srflow-measure
reads both), one image reader (a corrupt or tiny input is an error naming the file, leaving nothing written), one
temperature check, one count of non-finite samples (listed, and left out of every metric), checked output folders,
atomic checkpoint writes, and dataset-level metrics fed every sample once per temperature."""
import os
from os import path as osp

import cv2
import numpy as np
import pytest
import torch

from srflow_plugin.inference import measuring
from srflow_plugin.models.srflow_model import SRFlowModel
from srflow_plugin.options_schema import OptionError
from srflow_plugin.tools import prepare_data
from srflow_plugin.tools import sample as sample_tool
from srflow_plugin.utils.checkpoint import atomic_save, remove_stale_temporaries
from srflow_plugin.utils.image import read_image, to_tensor
from helpers.devices import num_gpu
from helpers.tiny import TINY, write_image
from helpers.train import make_opt

pytestmark = pytest.mark.usefixtures('single_thread')


class _OneImage(torch.utils.data.Dataset):
    """BasicSR's paired dataset in miniature: one LR/GT pair read from files."""

    def __init__(self, lr_path, gt_path, name='pair'):
        self.opt = {'name': name}
        self.lr_path, self.gt_path = lr_path, gt_path

    def __len__(self):
        return 1

    def __getitem__(self, index):
        return {'lq': to_tensor(read_image(self.lr_path))[0], 'gt': to_tensor(read_image(self.gt_path))[0],
                'lq_path': self.lr_path, 'gt_path': self.gt_path}


def test_validation_and_srflow_sample_give_the_same_image_for_the_same_seed_and_measure_reads_both(
        pair, tmp_path, device):
    opt = make_opt(tmp_path, is_train=False, network_g={'type': 'SRFlowNet', **TINY},
                   path={'pretrain_network_g': str(pair / 'tiny.pth')},
                   val={'heats': [0.0, 0.8], 'n_sample': 2, 'seed': 7, 'suffix': 'val'}, num_gpu=num_gpu(device))
    opt['path']['visualization'] = str(tmp_path / 'validation')
    loader = torch.utils.data.DataLoader(_OneImage(str(pair / 'lr' / '0801x4.png'), str(pair / 'gt' / '0801.png')))
    SRFlowModel(opt).validation(loader, 'unit', None, save_img=True)
    sample_tool.main(['-i', str(pair / 'lr'), '-c', str(pair / 'tiny.pth'), '-o', str(tmp_path / 'sampled'),
                      '--temperatures', '0', '0.8', '--num_samples', '2', '--seed', '7', '--device', str(device)])

    validated = sorted(os.listdir(tmp_path / 'validation' / 'pair'))
    assert validated == ['0801_val_t0.8_s0.png', '0801_val_t0.8_s1.png', '0801_val_t0_s0.png']
    assert sorted(os.listdir(tmp_path / 'sampled')) == ['0801_t0.8_s0.png', '0801_t0.8_s1.png', '0801_t0_s0.png']
    for tag in ('t0_s0', 't0.8_s0', 't0.8_s1'):
        a = cv2.imread(str(tmp_path / 'validation' / 'pair' / f'0801_val_{tag}.png'))
        b = cv2.imread(str(tmp_path / 'sampled' / f'0801_{tag}.png'))
        assert np.array_equal(a, b), tag
    assert not np.array_equal(cv2.imread(str(tmp_path / 'sampled' / '0801_t0.8_s0.png')),
                              cv2.imread(str(tmp_path / 'sampled' / '0801_t0.8_s1.png')))

    rows = {}
    for folder in ('validation', 'sampled'):
        rows[folder] = measuring.measure(str(tmp_path / folder), str(pair / 'gt'), str(pair / 'lr'), use_lpips=False,
                                         verbose=False, temperature=0.8)
        assert [r['image'] for r in rows[folder]] == ['0801', 'mean'] and rows[folder][0]['samples'] == 2
    assert rows['validation'][0]['psnr'] == rows['sampled'][0]['psnr']


def test_measure_without_a_temperature_refuses_validation_output_of_several_temperatures(pair, tmp_path):
    folder = tmp_path / 'visualization' / '0801'
    for name in ('0801_5000_t0_s0.png', '0801_5000_t0.8_s0.png'):
        write_image(folder / name, 32, 40, seed=1)
    with pytest.raises(ValueError, match=r'SR files of 0801 carry 2 temperatures \(0, 0\.8\)'):
        measuring.measure(str(tmp_path / 'visualization'), str(pair / 'gt'), scale=4, use_lpips=False, verbose=False)


# ---------------------------------------------------------------------------------------------------- non-finite
@pytest.mark.parametrize('value', ['nan', 'inf', '-1'])
def test_non_finite_or_negative_temperatures_are_refused(pair, tmp_path, capsys, value):
    with pytest.raises(SystemExit):
        sample_tool.main(['-i', str(pair / 'lr'), '-c', str(pair / 'tiny.pth'), '-o', str(tmp_path / 'o'),
                          '--temperatures', '0.8', value])
    assert '--temperatures must be finite and >= 0' in capsys.readouterr().err
    assert not (tmp_path / 'o').exists()


def test_samples_with_non_finite_pixels_are_counted_listed_and_left_out_of_measuring(
        pair, tmp_path, monkeypatch, capsys):
    real = sample_tool.iter_samples

    def poisoned(*args, **kwargs):
        for key, sample in real(*args, **kwargs):
            if key == (0.8, 1):
                sample[..., :2, :3] = float('nan')
            yield key, sample

    monkeypatch.setattr(sample_tool, 'iter_samples', poisoned)
    sample_tool.main(['-i', str(pair / 'lr'), '-c', str(pair / 'tiny.pth'), '-o', str(tmp_path / 'out'),
                      '--temperatures', '0.8', '--num_samples', '2'])
    err = capsys.readouterr().err
    assert '0801 at temperature 0.8: 6 non-finite pixels' in err
    assert 'Non-finite pixels per temperature: 0.8: 6' in err
    assert (tmp_path / 'out' / 'nonfinite.tsv').read_text() == '0801_t0.8_s1.png\t6\n'
    rows = measuring.measure(str(tmp_path / 'out'), str(pair / 'gt'), str(pair / 'lr'), use_lpips=False,
                             verbose=False)
    assert rows[0]['samples'] == 1 and rows[0]['nonfinite'] == 1 and rows[1]['nonfinite'] == 1
    assert 'left out of the metrics: ' + str(tmp_path / 'out' / '0801_t0.8_s1.png') in capsys.readouterr().err
    # a re-run that writes the file finite again takes it off the list
    monkeypatch.setattr(sample_tool, 'iter_samples', real)
    sample_tool.main(['-i', str(pair / 'lr'), '-c', str(pair / 'tiny.pth'), '-o', str(tmp_path / 'out'),
                      '--temperatures', '0.8', '--num_samples', '2'])
    assert not (tmp_path / 'out' / 'nonfinite.tsv').exists()


def test_validation_counts_non_finite_pixels_per_temperature_and_keeps_them_out_of_the_metric_means(pair, tmp_path):
    model = SRFlowModel(make_opt(tmp_path, is_train=False, network_g={'type': 'SRFlowNet', **TINY},
                                 path={'pretrain_network_g': str(pair / 'tiny.pth')},
                                 val={'heats': [0.0, 0.8], 'n_sample': 2}))
    loader = torch.utils.data.DataLoader(_OneImage(str(pair / 'lr' / '0801x4.png'), str(pair / 'gt' / '0801.png')))
    model.validation(loader, 'clean', None, save_img=False)
    clean = dict(model.metric_results)
    net = model.net_g
    decode = net.decode
    calls = []

    def decode_with_nan(*args, **kwargs):
        out = decode(*args, **kwargs)
        calls.append(1)
        if len(calls) == 3:  # temperature 0: one sample; 0.8: samples 0 and 1 -> the second of temperature 0.8
            out = out.clone()
            out[..., :2, :2] = float('nan')
        return out

    net.decode = decode_with_nan
    model.validation(loader, 'poisoned', None, save_img=True)
    assert model.metric_results['nonfinite_t0.8'] == 4.0 and 'nonfinite_t0' not in model.metric_results
    assert model.metric_results['psnr_t0'] == clean['psnr_t0']
    # the mean at temperature 0.8 is that of the one finite sample, not a mean with a black patch in it
    assert model.metric_results['psnr_t0.8'] != clean['psnr_t0.8']
    listed = open(osp.join(model.opt['path']['visualization'], 'pair', 'nonfinite.tsv')).read()
    assert listed == '0801_unit_t0.8_s1.png\t4\n'


# ---------------------------------------------------------------------------------------------------- corrupt input
def _truncated_jpeg(path):
    img = np.random.default_rng(0).integers(0, 256, (64, 64, 3), np.uint8)
    ok, data = cv2.imencode('.jpg', img)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data.tobytes()[:len(data) // 2])


@pytest.mark.parametrize('kind', ['truncated', 'empty', 'one_pixel'])
def test_corrupt_images_are_an_error_naming_the_file_in_sample_and_prepare_data_leaving_nothing(
        pair, tmp_path, kind):
    bad = tmp_path / 'in' / ('bad.jpg' if kind == 'truncated' else 'bad.png')
    write_image(tmp_path / 'in' / 'good.png', 64, 64, seed=1)
    if kind == 'truncated':
        _truncated_jpeg(bad)
    elif kind == 'empty':
        bad.write_bytes(b'')
    else:
        cv2.imwrite(str(bad), np.zeros((1, 1, 3), np.uint8))
    error = (OSError, ValueError)
    with pytest.raises(error, match=str(bad).replace('.', r'\.')):
        sample_tool.main(['-i', str(tmp_path / 'in'), '-c', str(pair / 'tiny.pth'), '-o', str(tmp_path / 'sr')])
    assert not (tmp_path / 'sr').exists()
    with pytest.raises(error, match=str(bad).replace('.', r'\.')):
        prepare_data.prepare(str(tmp_path / 'in'), str(tmp_path / 'data'), crop_size=32, step=32, thresh_size=0)
    assert os.listdir(tmp_path / 'data') == []


def test_measure_names_a_truncated_sr_file(pair, tmp_path):
    _truncated_jpeg(tmp_path / 'sr' / '0801_t0.8_s0.jpg')
    with pytest.raises(OSError, match=r'0801_t0\.8_s0\.jpg: the JPEG is truncated'):
        measuring.measure(str(tmp_path / 'sr'), str(pair / 'gt'), scale=4, use_lpips=False, verbose=False)


# ---------------------------------------------------------------------------------------------------- I/O failures
@pytest.mark.skipif(os.geteuid() == 0, reason='root writes into read-only folders')
def test_srflow_sample_checks_that_it_can_write_before_computing(pair, tmp_path, monkeypatch):
    (tmp_path / 'ro').mkdir()
    os.chmod(tmp_path / 'ro', 0o500)
    monkeypatch.setattr(sample_tool, 'iter_samples', lambda *a, **k: pytest.fail('sampled before the check'))
    with pytest.raises(OSError, match=str(tmp_path / 'ro')):
        sample_tool.main(['-i', str(pair / 'lr'), '-c', str(pair / 'tiny.pth'), '-o', str(tmp_path / 'ro' / 'o')])


def test_srflow_sample_checks_the_output_before_computing_even_as_root(pair, tmp_path, monkeypatch):
    (tmp_path / 'file').write_text('a file where the output folder should be')
    monkeypatch.setattr(sample_tool, 'iter_samples', lambda *a, **k: pytest.fail('sampled before the check'))
    with pytest.raises(OSError, match=r'Cannot write to .*file'):
        sample_tool.main(['-i', str(pair / 'lr'), '-c', str(pair / 'tiny.pth'), '-o', str(tmp_path / 'file')])


def test_a_failed_save_names_the_file_and_leaves_no_temporary(tmp_path, monkeypatch):
    def full_disk(obj, path):
        open(path, 'wb').write(b'half')
        raise RuntimeError('[enforce fail at inline_container.cc:595] . unexpected pos 64 vs 0')

    monkeypatch.setattr(torch, 'save', full_disk)
    with pytest.raises(OSError, match=r'Cannot write .*net_g_5\.pth: .*unexpected pos'):
        atomic_save({'params': {}}, str(tmp_path / 'net_g_5.pth'))
    assert os.listdir(tmp_path) == []


def test_temporaries_of_a_killed_save_are_removed_at_the_next_start(tmp_path):
    opt = make_opt(tmp_path)
    dead_pid = 2**22 + 12345  # above the default pid_max: no such process
    stale = [osp.join(opt['path']['models'], f'net_g_3.pth.tmp{dead_pid}'),
             osp.join(opt['path']['training_states'], f'3.state.tmp{dead_pid}')]
    alive = osp.join(opt['path']['models'], f'net_g_4.pth.tmp{os.getppid()}')  # a running process: kept
    for path in stale + [alive]:
        open(path, 'wb').write(b'partial')
    SRFlowModel(opt)
    assert [osp.exists(p) for p in stale] == [False, False] and osp.exists(alive)
    assert remove_stale_temporaries(opt['path']['models']) == []


def test_a_dataset_level_metric_sees_every_sample_and_reports_once_per_temperature(pair, tmp_path):
    from srflow_plugin.models.validation import DATASET_METRICS, register_dataset_metric

    @register_dataset_metric
    class PooledAbsDiff:
        """Mean |SR - GT| over the pixels of all samples of all images (a stand-in for FID)."""
        instances = []

        def __init__(self, scale_by=1.0):
            self.scale_by, self.total, self.count = scale_by, 0.0, 0
            PooledAbsDiff.instances.append(self)

        def update(self, sr, gt, lq):
            self.total += float(np.abs(sr.astype(np.float64) - gt).sum())
            self.count += sr.size

        def compute(self):
            return self.scale_by * self.total / self.count

    try:
        opt = make_opt(tmp_path, is_train=False, network_g={'type': 'SRFlowNet', **TINY},
                       path={'pretrain_network_g': str(pair / 'tiny.pth')},
                       val={'heats': [0.0, 0.8], 'n_sample': 2, 'suffix': 'v',
                            'metrics': {'pooled': {'type': 'PooledAbsDiff', 'scale_by': 2.0, 'better': 'lower'}}})
        loader = torch.utils.data.DataLoader(_OneImage(str(pair / 'lr' / '0801x4.png'),
                                                       str(pair / 'gt' / '0801.png')))
        model = SRFlowModel(opt)
        model.validation(loader, 'unit', None, save_img=True)
    finally:
        del DATASET_METRICS['PooledAbsDiff']
    assert [(a.count, a.scale_by) for a in PooledAbsDiff.instances] == [(32 * 40 * 3, 2.0), (2 * 32 * 40 * 3, 2.0)]
    gt = cv2.imread(str(pair / 'gt' / '0801.png')).astype(np.float64)
    folder = osp.join(opt['path']['visualization'], 'pair')
    for temperature, files in (('0', ['0801_v_t0_s0.png']), ('0.8', ['0801_v_t0.8_s0.png', '0801_v_t0.8_s1.png'])):
        expected = 2.0 * np.mean([np.abs(cv2.imread(osp.join(folder, f)) - gt).mean() for f in files])
        assert model.metric_results[f'pooled_t{temperature}'] == pytest.approx(expected, rel=1e-12)
    assert model.best_metric_results['pair']['pooled_t0.8']['better'] == 'lower'


@pytest.mark.parametrize('temperature', [float('inf'), float('nan')])
def test_validation_refuses_a_non_finite_temperature_before_sampling(tmp_path, temperature):
    # checked with the other options when the model is built, long before the first validation samples anything
    with pytest.raises(OptionError, match=rf"'val\.heats\[\]' = {temperature} \(float\): must be a number >= 0\.$"):
        SRFlowModel(make_opt(tmp_path, val={'heats': [0.0, temperature], 'n_sample': 1}))
