"""Matched compute, measured: parameters, multiply-accumulates per output pixel and receptive field of networks.

    srflow-complexity -opt options/flow_vs_gan/train_SRGAN_x4.yml -opt options/flow_vs_gan/train_Flow_x4.yml
    srflow-complexity --arch SRResNet --arch CouplingFlowNet --arch "SRFlowNet scale=4" --match 0.1

Every network of an option file (``network_g``, ``network_d``, ...) and every ``--arch "<registered name>
key=value ..."`` is built with BasicSR's ``build_network`` (values parsed as YAML) and measured in eval mode:

- parameters: all of them;
- multiply-accumulates (MACs) per output pixel: every convolution and matrix product that one forward pass runs
  (``torch.utils.flop_counter``, FLOPs / 2; normalisation, activations and additions are not counted), divided by
  the output pixels. SR networks run on an LR probe; a flow (a ``ConditionalFlowNet``) counts
  ``condition`` + ``decode``, i.e. drawing one sample. A network whose output is not an image (a discriminator)
  is counted per input pixel, on an input of its ``input_size`` (default 128);
- receptive field: the gradient of one output pixel near the centre (all channels) with respect to the input,
  with every parameter perturbed by noise first (so zero-initialised layers hide no path) and BatchNorm in eval
  mode; the side of the box of non-zero gradient, in input pixels and times the scale in output pixels. The probe
  grows up to ``--max-probe`` input pixels; a field still touching its border is printed as ``>= N``.

``--match F`` exits with status 1 unless the first two networks differ by at most the fraction F (of the larger)
in MACs per output pixel and in receptive field.
"""
import argparse
import copy
import sys

import torch
import yaml
from basicsr.archs import build_network
from basicsr.utils.registry import ARCH_REGISTRY
from torch.utils.flop_counter import FlopCounterMode

from srflow_plugin.archs.flow_base import ConditionalFlowNet
from srflow_plugin.tools.command import HelpFormatter, console_command
from srflow_plugin.utils.option_file import read_option_file

__all__ = ['NetworkFigures', 'measure_network', 'parse_arch', 'option_networks', 'relative_gap', 'main', 'cli']


class NetworkFigures:
    """What :func:`measure_network` found for one network (``rf_exact`` False: the field is a lower bound)."""

    def __init__(self, label, arch, params, macs_per_pixel, per, rf_input, scale, rf_exact):
        self.label, self.arch, self.params = label, arch, params
        self.macs_per_pixel, self.per = macs_per_pixel, per
        self.rf_input, self.scale, self.rf_exact = rf_input, scale, rf_exact

    @property
    def rf_output(self):
        return None if self.rf_input is None else self.rf_input * self.scale

    def row(self):
        if self.rf_input is None:
            rf = 'whole input' if self.per == 'input' else 'not probed'
        else:
            bound = '' if self.rf_exact else '>= '
            rf = f'{bound}{self.rf_input} px ({bound}{self.rf_output} output px)'
        return (f'{self.label:<28s} {self.arch:<22s} {self.params / 1e6:9.3f} M  '
                f'{self.macs_per_pixel / 1e6:9.4f} M per {self.per} pixel   {rf}')


def _in_channels(net):
    for name in ('in_channels', 'num_in_ch', 'in_nc'):
        if isinstance(getattr(net, name, None), int):
            return getattr(net, name)
    first = next((m for m in net.modules() if isinstance(m, torch.nn.Conv2d)), None)
    return first.in_channels if first is not None else 3


def _run(net, x, generator_seed=0):
    """The network's output image for input x (a flow draws one sample at temperature 0.8 with fixed latents)."""
    if isinstance(net, ConditionalFlowNet):
        cond = net.condition(x)
        latents = net.draw_latents(*x.shape[-2:], 0.8, torch.Generator().manual_seed(generator_seed), batch=x.shape[0],
                                   device=x.device, dtype=x.dtype)
        return net.decode(cond=cond, latents=latents)
    return net(x)


def _count_macs(net, x):
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        out = _run(net, x)
    return counter.get_total_flops() / 2, out


def _receptive_field(net, channels, size_hint, max_probe, seed=0):
    """(side in input pixels, exact?) of the non-zero gradient of the centre output pixel."""
    probe = copy.deepcopy(net).eval()
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in probe.parameters():
            p.add_(torch.randn(p.shape, generator=generator) * 0.05)
    size = size_hint
    while True:
        x = torch.rand(1, channels, size, size, generator=generator).requires_grad_(True)
        out = _run(probe, x)
        scale = out.shape[-1] // size
        centre = out.shape[-1] // 2
        out[0, :, centre, centre].sum().backward()
        # a pixel belongs to the field when its gradient is not exactly 0 (NaN too: a perturbed deep network may
        # overflow, but the path exists)
        support = (x.grad[0] != 0).any(0).nonzero()
        if support.numel() == 0:
            raise ValueError(f'The gradient probe of {type(net).__name__} found no input pixel the output depends on')
        lo, hi = support.min(0).values, support.max(0).values
        side = int((hi - lo).max()) + 1
        touches = bool((lo == 0).any() or (hi == size - 1).any())
        if not touches:
            return side, True, scale
        if size >= max_probe:
            return side, False, scale
        size = min(2 * size, max_probe)


def measure_network(net, label='', arch=None, probe_size=16, max_probe=128, image_input=None, receptive_field=True):
    """Parameters, MACs per output pixel and receptive field of one network (see the module docstring).

    Args:
        net (nn.Module): The network (not modified: the field is probed on a perturbed copy).
        label (str): Name to print. Default: ''.
        arch (str): Arch name to print. Default: the class name.
        probe_size (int): Input side to count MACs on and to start the receptive-field probe. Default: 16.
        max_probe (int): Largest input side of the probe. Default: 128.
        image_input (int): For a network whose output is not an image, the input side. Default: its
            ``input_size`` attribute or 128.
        receptive_field (bool): Probe the receptive field (else ``rf_input`` is None). Default: True.

    Returns:
        NetworkFigures
    """
    net = net.eval()
    channels = _in_channels(net)
    params = sum(p.numel() for p in net.parameters())
    arch = arch or type(net).__name__
    x = torch.rand(1, channels, probe_size, probe_size)
    try:
        macs, out = _count_macs(net, x)
    except Exception:  # noqa: BLE001  (fixed-size networks, e.g. a discriminator: retried at its input size)
        out = None
    if out is None or out.dim() != 4:
        side = image_input or getattr(net, 'input_size', 128)
        x = torch.rand(1, channels, side, side)
        macs, _ = _count_macs(net, x)
        return NetworkFigures(label, arch, params, macs / (side * side), 'input', None, 1, True)
    out_pixels = out.shape[-2] * out.shape[-1]
    if not receptive_field:
        return NetworkFigures(label, arch, params, macs / out_pixels, 'output', None, out.shape[-1] // probe_size, True)
    rf, exact, scale = _receptive_field(net, channels, probe_size, max_probe)
    return NetworkFigures(label, arch, params, macs / out_pixels, 'output', rf, scale, exact)


def parse_arch(spec):
    """``'SRFlowNet scale=4 num_block=2'`` -> ``{'type': 'SRFlowNet', 'scale': 4, 'num_block': 2}``."""
    words = spec.split()
    if not words:
        raise ValueError('--arch needs a registered architecture name')
    opt = {'type': words[0]}
    for word in words[1:]:
        if '=' not in word:
            raise ValueError(f"--arch {spec!r}: '{word}' is not key=value")
        key, value = word.split('=', 1)
        opt[key] = yaml.safe_load(value)
    return opt


def option_networks(path):
    """[(label, network option)] of every ``network_*`` of an option file (:mod:`srflow_plugin.utils.option_file`)."""
    try:
        opt = read_option_file(path)
    except OSError as error:
        raise FileNotFoundError(f'Cannot read option file {path}: {error}') from error
    nets = [(f'{path}:{key}', value) for key, value in (opt or {}).items()
            if key.startswith('network_') and isinstance(value, dict)]
    if not nets:
        raise ValueError(f'Option file {path} has no network_* section')
    return nets


def _build(opt, source):
    if opt.get('type') not in ARCH_REGISTRY:
        raise ValueError(f"{source}: '{opt.get('type')}' is not a registered architecture")
    try:
        return build_network(copy.deepcopy(opt))
    except TypeError as error:
        raise ValueError(f'{source}: cannot build {opt}: {error}') from error


def relative_gap(a, b):
    """|a - b| / max(a, b)."""
    return abs(a - b) / max(abs(a), abs(b)) if max(abs(a), abs(b)) > 0 else 0.0


def main(argv=None):
    parser = argparse.ArgumentParser(prog='srflow-complexity', description=__doc__.split('\n')[0],
                                     formatter_class=HelpFormatter, epilog=__doc__)
    parser.add_argument('-opt', action='append', default=[], help='Option file (repeatable).')
    parser.add_argument('--arch', action='append', default=[], help='"<arch> key=value ..." (repeatable).')
    parser.add_argument('--probe', type=int, default=16, help='LR side for counting and the first probe.')
    parser.add_argument('--max-probe', type=int, default=128, help='Largest LR side of the probe.')
    parser.add_argument('--no-probe', action='store_true', help='Skip the receptive-field probe (MACs only).')
    parser.add_argument('--match', type=float, default=None,
                        help='Fail unless the first two networks agree within this fraction.')
    args = parser.parse_args(argv)
    specs = [item for path in args.opt for item in option_networks(path)]
    specs += [(spec, parse_arch(spec)) for spec in args.arch]
    if not specs:
        parser.error('give at least one -opt or --arch')
    torch.manual_seed(0)
    figures = []
    print(f"{'network':<28s} {'arch':<22s} {'params':>11s}  {'MACs':>11s}                    receptive field")
    for label, opt in specs:
        net = _build(opt, label)
        figures.append(measure_network(net, label, opt['type'], args.probe, args.max_probe,
                                       receptive_field=not args.no_probe))
        print(figures[-1].row(), flush=True)
    if args.match is not None:
        if len(figures) < 2 or figures[0].rf_output is None or figures[1].rf_output is None:
            raise ValueError('--match needs two image networks first')
        a, b = figures[:2]
        gaps = {'MACs per pixel': relative_gap(a.macs_per_pixel, b.macs_per_pixel),
                'receptive field': relative_gap(a.rf_output, b.rf_output)}
        ok = all(gap <= args.match for gap in gaps.values()) and a.rf_exact and b.rf_exact
        print(f"{a.label} vs {b.label}: " + ', '.join(f'{k} differ by {100 * v:.1f} %' for k, v in gaps.items()) +
              f" -> {'within' if ok else 'NOT within'} {100 * args.match:g} %")
        if not ok:
            raise RuntimeError(f'{a.label} and {b.label} are not within {100 * args.match:g} % of each other')
    return figures


cli = console_command(main, 'srflow-complexity')

if __name__ == '__main__':
    sys.exit(cli())
