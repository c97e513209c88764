"""Loading the SRFlow release's checkpoints and pretrained encoders; equality with the release's own outputs."""
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from basicsr.archs.rrdbnet_arch import RRDBNet

from srflow_plugin.archs import SRFlowNet, SRFlowRRDBNet, convert_release_state_dict, load_encoder_weights
from helpers.release import converted_release_net, release_fixture
from helpers.train import subprocess_env

REPO = Path(__file__).resolve().parents[1]


def release_names(state_dict):
    """BasicSR RRDB keys -> the release's names (the inverse of the plugin's renaming, written out here)."""
    out = {}
    for key, value in state_dict.items():
        key = key.replace('conv_body.', 'trunk_conv.').replace('conv_hr.', 'HRconv.')
        for i in (1, 2, 3):
            key = key.replace(f'conv_up{i}.', f'upconv{i}.')
        parts = key.split('.')
        if parts[0] == 'body':
            key = '.'.join(['RRDB_trunk', parts[1], parts[2].upper()] + parts[3:])
        out[key] = value
    return out


@pytest.mark.parametrize('scale', [4, 8])
def test_converted_release_network_reproduces_release_encode(scale, device):
    data = release_fixture(scale)
    net = converted_release_net(data).to(device)
    with torch.no_grad():
        latents, nll = net.encode(data['gt'].to(device), data['lq'].to(device))
    latents, nll = [t.cpu() for t in latents], nll.cpu()
    # the release reports bits per pixel (3 channels), the plugin bits per dimension
    assert torch.allclose(nll * 3, data['encode']['nll_bits_per_pixel'], atol=1e-4)
    assert len(latents) == len(data['encode']['eps'])
    for ours, theirs in zip(latents, data['encode']['eps']):
        assert (ours - theirs).abs().max().item() < 1e-4


@pytest.mark.parametrize('scale', [4, 8])
def test_converted_release_network_reproduces_release_decode_and_reconstruction(scale, device):
    data = release_fixture(scale)
    net = converted_release_net(data).to(device)
    lq, gt = data['lq'].to(device), data['gt'].to(device)
    with torch.no_grad():
        sr = net.decode(lq, latents=[t.to(device) for t in data['decode']['eps']]).cpu()
        rec = net.decode(lq, latents=net.encode(gt, lq)[0]).cpu()
    assert (sr - data['decode']['sr']).abs().max().item() < 1e-4
    assert (rec - data['reconstruction']).abs().max().item() < 1e-4


def test_converter_script_writes_a_basicsr_checkpoint_that_reproduces_the_release(tmp_path):
    data = release_fixture(4)
    release_file = tmp_path / 'SRFlow_tiny_4X.pth'
    torch.save(data['state_dict'], release_file)
    out = tmp_path / 'converted' / 'SRFlow_tiny_4X_basicsr.pth'
    c = data['config']
    args = ['--scale', '4', '--num_feat', str(c['nf']), '--num_block', str(c['nb']), '--num_grow_ch', str(c['gc']),
            '--tap_blocks', *map(str, c['stack_blocks']), '--flow_steps', str(c['K']), '--hidden_channels',
            str(c['coupling_hidden_channels'])]
    command = [sys.executable, '-m', 'srflow_plugin.tools.convert', str(release_file), '-o', str(out)] + args
    run = subprocess.run(command, capture_output=True, text=True, env=subprocess_env())
    assert run.returncode == 0, run.stderr
    checkpoint = torch.load(out, weights_only=True)
    assert sorted(checkpoint) == ['network_g', 'params'] and os.listdir(out.parent) == [out.name]
    config = dict(checkpoint['network_g'])
    assert config.pop('type') == 'SRFlowNet' and config['trunk_skip'] == 'trunk'
    net = SRFlowNet(**config).eval()
    net.load_state_dict(checkpoint['params'], strict=True)
    with torch.no_grad():
        nll = net.encode(data['gt'], data['lq'])[1]
    assert torch.allclose(nll * 3, data['encode']['nll_bits_per_pixel'], atol=1e-4)


def test_release_keys_for_another_layout_are_an_error():
    data = release_fixture(4)
    net = SRFlowNet(scale=4, num_feat=64, num_block=2, num_grow_ch=32, tap_blocks=(1, 0, 0, 1), flow_steps=1,
                    hidden_channels=16)
    with pytest.raises(ValueError, match='flowUpsamplerNet.layers'):
        convert_release_state_dict(data['state_dict'], net)


def _encoder_pair(seed=0, **kwargs):
    torch.manual_seed(seed)
    return SRFlowRRDBNet(num_feat=8, num_block=2, num_grow_ch=4, **kwargs)


@pytest.mark.parametrize('key', ['params', 'params_ema'])
def test_basicsr_rrdbnet_checkpoint_loads_into_the_encoder(tmp_path, key):
    torch.manual_seed(3)
    basicsr_net = RRDBNet(3, 3, scale=4, num_feat=8, num_block=2, num_grow_ch=4)
    checkpoint = {key: basicsr_net.state_dict()}
    if key == 'params_ema':  # ESRGAN releases hold both; the EMA weights are the ones to use
        checkpoint['params'] = {k: torch.zeros_like(v) for k, v in basicsr_net.state_dict().items()}
    torch.save(checkpoint, tmp_path / 'RRDB_ESRGAN_x4.pth')
    encoder = _encoder_pair()
    load_encoder_weights(encoder, str(tmp_path / 'RRDB_ESRGAN_x4.pth'))
    for name, value in basicsr_net.state_dict().items():
        assert torch.equal(encoder.state_dict()[name], value)


def test_release_rrdb_checkpoint_with_old_names_loads_into_the_encoder(tmp_path):
    source = _encoder_pair(seed=4, scale=8)
    torch.save(release_names(source.state_dict()), tmp_path / 'RRDB_DF2K_8X.pth')
    assert any(k.startswith('RRDB_trunk.1.RDB3.') for k in release_names(source.state_dict()))
    encoder = _encoder_pair(scale=8, trunk_skip='trunk')
    load_encoder_weights(encoder, str(tmp_path / 'RRDB_DF2K_8X.pth'))
    for name, value in source.state_dict().items():
        assert torch.equal(encoder.state_dict()[name], value)


def test_encoder_checkpoint_mismatch_lists_missing_and_unexpected_keys(tmp_path):
    state = _encoder_pair(scale=4).state_dict()
    state['extra.weight'] = torch.zeros(1)
    del state['conv_hr.bias']
    torch.save({'params': state}, tmp_path / 'broken.pth')
    with pytest.raises(ValueError) as error:
        load_encoder_weights(_encoder_pair(scale=4), str(tmp_path / 'broken.pth'))
    message = str(error.value)
    assert 'broken.pth' in message and "missing keys (1): ['conv_hr.bias']" in message
    assert "unexpected keys (1): ['extra.weight']" in message


def test_encoder_checkpoint_of_another_scale_names_the_shape_mismatch(tmp_path):
    torch.save({'params': SRFlowRRDBNet(num_feat=16, num_block=2, num_grow_ch=4).state_dict()}, tmp_path / 'x.pth')
    with pytest.raises(ValueError, match=r'conv_first.weight: checkpoint \(16, 3, 3, 3\) vs network \(8, 3, 3, 3\)'):
        load_encoder_weights(_encoder_pair(), str(tmp_path / 'x.pth'))
