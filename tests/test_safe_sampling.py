"""Safe sampling: samples with non-finite or far out-of-range pixels are repaired by redrawing their region's latents
colder; every other sample stays bit for bit what it was."""
import math

import pytest
import torch

from srflow_plugin.inference import sampling
from srflow_plugin.inference.safe_sampling import bad_pixel_mask, decode_safely, latent_region
from srflow_plugin.models import SRFlowModel, validation
from srflow_plugin.tools import latent as latent_tool
from srflow_plugin.tools import sample as sample_tool
from srflow_plugin.utils.checkpoint import save_srflow
from srflow_plugin.utils.image import read_nonfinite
from helpers.tiny import TINY, tiny_net, write_image
from helpers.train import make_opt, val_loader

pytestmark = pytest.mark.usefixtures('single_thread')
LQ = (16, 16)


def healthy(net):
    """``net`` with the scale of a trained model: its first ActNorm maps pixels to unit variance around 0.5 (what
    the data-dependent init does on photographs), so samples at tau <= 0.9 stay near [0, 1] as a trained model's
    do, instead of the wild values of random weights."""
    with torch.no_grad():
        actnorm = net.levels[0].steps[0].actnorm
        actnorm.logs.fill_(math.log(10.0))
        actnorm.bias.fill_(-0.5)
    return net


def poisoned(latents, sample=0, value=1e30):
    """The latents with one huge value in the top latent of ``sample``: its decode overflows to inf / NaN."""
    latents = [z.clone() for z in latents]
    latents[-1][sample, :, 1, 1] = value
    return latents


def setup():
    net = healthy(tiny_net())
    lq = torch.rand(1, 3, *LQ, generator=torch.Generator().manual_seed(0))
    cond = net.condition(lq)
    latents = net.draw_latents(*LQ, 0.8, torch.Generator().manual_seed(1), batch=2)
    return net, (lambda z: net.decode(cond=cond, latents=z)), latents


@torch.no_grad()
def test_an_injected_non_finite_sample_turns_finite():
    net, decode, latents = setup()
    bad_latents = poisoned(latents)
    before = decode(bad_latents)
    bad = int(bad_pixel_mask(before).sum())
    assert not bool(before[0].isfinite().all()) and bad > 0  # the injected sample is broken as drawn
    repaired, repair = decode_safely(decode, bad_latents)
    assert bool(repaired.isfinite().all())
    assert int(bad_pixel_mask(repaired).sum()) == 0
    assert (repair.pixels, repair.samples, repair.remaining) == (bad, 1, 0) and repair.rounds >= 1
    assert torch.equal(repaired[1], before[1])  # the other sample of the batch: the first decode, bit for bit
    assert repaired.min() > -0.5 and repaired.max() < 1.5
    assert all(torch.equal(a, b) for a, b in zip(bad_latents, poisoned(latents)))  # the caller's latents untouched


@torch.no_grad()
def test_finite_samples_stay_bit_identical():
    net, decode, latents = setup()
    plain = decode(latents)
    safe, repair = decode_safely(decode, latents)
    assert torch.equal(safe, plain) and repair.pixels == 0 and repair.rounds == 0
    lq = torch.rand(1, 3, *LQ, generator=torch.Generator().manual_seed(2))
    for tile in (None, 4):
        drawn = sampling.sample_image(net, lq, [0.0, 0.9], 2, torch.Generator().manual_seed(3), tile, 2)
        repairs = {}
        safe = sampling.sample_image(net, lq, [0.0, 0.9], 2, torch.Generator().manual_seed(3), tile, 2, True,
                                     repairs)
        assert drawn.keys() == safe.keys() and repairs == {}
        assert all(torch.equal(drawn[k], safe[k]) for k in drawn)


def test_far_out_of_range_pixels_are_bad_and_slight_overshoot_is_not():
    sr = torch.full((1, 3, 4, 4), 0.5)
    sr[0, 0, 0, 0], sr[0, 1, 1, 1], sr[0, 2, 2, 2], sr[0, 0, 3, 3] = float('nan'), 1.7, -0.6, 1.05
    assert bad_pixel_mask(sr)[0, 0].nonzero().tolist() == [[0, 0], [1, 1], [2, 2]]


def test_region_maps_pixels_to_every_latent_cell_covering_them():
    mask = torch.zeros(1, 1, 8, 12, dtype=torch.bool)
    mask[0, 0, 5, 9] = True
    assert latent_region(mask, (2, 3), margin=0)[0, 0].nonzero().tolist() == [[1, 2]]  # 4x4 cells
    assert latent_region(mask, (4, 6), margin=1)[0, 0].sum() == 9  # 2x2 cells, 3x3 around (2, 4)


def test_validation_repairs_and_reports(tmp_path, monkeypatch):
    draw = validation.draw_noise
    monkeypatch.setattr(validation, 'draw_noise', lambda *a: [poisoned(z, value=float('inf')) for z in draw(*a)])
    results = {}
    for safe in (False, True):
        model = SRFlowModel(make_opt(tmp_path / str(safe), is_train=False, val={'safe_sampling': safe}))
        healthy(model.net_g)
        model.nondist_validation(val_loader(n=1), 0, None, False)
        results[safe] = model.metric_results
    assert results[False]['nonfinite_t0.8'] > 0 and 'repaired_t0.8' not in results[False]
    assert 'nonfinite_t0.8' not in results[True]
    assert results[True]['repaired_t0.8'] >= results[False]['nonfinite_t0.8'] > 0
    # (inf * tau 0 is NaN: the tau = 0 image is poisoned too) every sample is measured once repaired
    assert 'psnr_t0' not in results[False] and results[True]['psnr_t0'] > 5 and results[True]['psnr_t0.8'] > 5


def test_sample_command_repairs_and_says_so(tmp_path, monkeypatch, capsys):
    checkpoint = tmp_path / 'net.pth'
    save_srflow(healthy(tiny_net()), str(checkpoint), {'type': 'SRFlowNet', **TINY})
    write_image(tmp_path / 'lr' / 'img.png', *LQ)
    draw = sampling.draw_noise
    monkeypatch.setattr(sampling, 'draw_noise', lambda *a: [poisoned(z) for z in draw(*a)])
    out = tmp_path / 'out'
    sample_tool.main(['-i', str(tmp_path / 'lr'), '-c', str(checkpoint), '-o', str(out), '--temperatures', '0.9',
                      '--num_samples', '2', '--safe_sampling'])
    assert 'safe sampling repaired 2 sample(s)' in capsys.readouterr().out
    assert read_nonfinite(str(out)) == {}


@torch.no_grad()
def test_latent_sweep_repairs(monkeypatch):
    net = healthy(tiny_net())
    draw = latent_tool.draw_noise
    monkeypatch.setattr(latent_tool, 'draw_noise', lambda *a: [poisoned(z) for z in draw(*a)])
    lq = torch.rand(1, 3, *LQ)
    plain = latent_tool.temperature_sweep(net, lq, [0.0, 1.0], torch.Generator().manual_seed(0))
    safe = latent_tool.temperature_sweep(net, lq, [0.0, 1.0], torch.Generator().manual_seed(0), safe=True)
    assert not bool(plain[1].isfinite().all()) and bool(safe[1].isfinite().all())
    assert torch.equal(plain[0], safe[0])
