"""Prints how long drawing many SRFlow samples for one LR image takes, the new paths beside the old ones.

    python scripts/benchmark_sampling.py                       # released x4 layout, 40x40 LR, 10 samples, CPU
    python scripts/benchmark_sampling.py --preset SRFlow_DF2K_8X --lr_size 24 --samples 8 --device cuda
    python scripts/benchmark_sampling.py --lr_size 160 --samples 10 --device cuda   # as scripts/gpu_check.sh

Every path decodes the same latents on the same weights (random, ActNorm initialised on a random batch as in
training, then slightly perturbed so that every sub-network shapes the output):

- re-encode per sample: ``decode(lq)`` for each sample (encoder and every LR-only part again each time), with the
  step inverse before this change ("old inverse": layer by layer, log-dets included) and with today's;
- LR encoding reused: ``condition(lq)`` once, then one ``decode(cond=...)`` per sample or one batched call for all;
- the same with freed memory kept for reuse (``srflow_plugin.utils.allocator.keep_freed_memory``, what the console
  commands do): every path before it runs with the C library's default allocator settings.

The max output difference compares each path's samples with the old re-encoding path's. Figures, not assertions.
"""
import argparse
from contextlib import nullcontext
from unittest import mock

import torch

from srflow_plugin.archs import SRFlowNet
from srflow_plugin.archs.flow_layers import FlowStep
from srflow_plugin.utils.allocator import keep_freed_memory
from benchmark_common import peak_memory_line, presets, timed


def old_inverse():
    """The step inverse as it was: every layer's inverse in turn, log-dets computed and dropped."""
    return mock.patch.object(FlowStep, 'fast_inverse', lambda step, y, cond=None: step.inverse(y, cond)[0])


def _bytes(obj):
    if torch.is_tensor(obj):
        return obj.numel() * obj.element_size()
    return sum(_bytes(o) for o in obj) if isinstance(obj, (list, tuple)) else 0


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--preset', default='SRFlow_DF2K_4X', choices=sorted(presets()))
    parser.add_argument('--lr_size', type=int, default=40, help='LR height and width')
    parser.add_argument('--samples', type=int, default=10)
    parser.add_argument('--temperature', type=float, default=0.9)
    parser.add_argument('--repeat', type=int, default=3, help='timed runs per path (mean), after one warm-up run')
    parser.add_argument('--device', default='cpu')
    args = parser.parse_args(argv)

    device = torch.device(args.device)
    torch.manual_seed(0)
    net = SRFlowNet(**presets()[args.preset]).to(device)
    size, n = args.lr_size, args.samples
    gt = torch.rand(2, 3, size * net.scale, size * net.scale, device=device)
    with torch.no_grad():
        net.train().encode(gt, torch.nn.functional.avg_pool2d(gt, net.scale))  # ActNorm's data-dependent init
        for param in net.parameters():
            param.add_(torch.randn_like(param) * 1e-3)
    net.eval()
    lq = torch.rand(1, 3, size, size, device=device)
    latents = net.draw_latents(size, size, args.temperature, torch.Generator().manual_seed(1), batch=n)
    one = [[t[i:i + 1] for t in latents] for i in range(n)]
    outputs, seconds = {}, {}

    def run(name, fn, patch=nullcontext):
        with patch():
            fn()  # warm-up (and the 1x1 convolutions' cached inverses)
            seconds[name] = timed(lambda: outputs.__setitem__(name, fn()), device, args.repeat)

    def re_encode():
        return torch.cat([net.decode(lq, latents=z) for z in one])

    def reused_one_by_one():
        cond = net.condition(lq)
        return torch.cat([net.decode(cond=cond, latents=z) for z in one])

    def reused_batch():
        return net.decode(cond=net.condition(lq), latents=latents)

    with torch.inference_mode():
        run('re-encode per sample, old inverse', re_encode, old_inverse)
        run('re-encode per sample', re_encode)
        run('reused, one by one, old inverse', reused_one_by_one, old_inverse)
        run('reused, one by one', reused_one_by_one)
        run(f'reused, batch of {n}', reused_batch)
        kept = keep_freed_memory()
        if kept:
            run('reused, one by one, memory kept', reused_one_by_one)
            run(f'reused, batch of {n}, memory kept', reused_batch)
            run('re-encode per sample, memory kept', re_encode)
        condition_time = timed(lambda: net.condition(lq), device, 1)
        hr_pixels = (size * net.scale)**2
        stored_bytes = _bytes(net.condition(lq).level_conds) / hr_pixels
        lazy_bytes = _bytes(net.condition(lq, precompute=False).level_conds) / hr_pixels

    reference = outputs['re-encode per sample, old inverse']
    if not bool(torch.isfinite(reference).all()):
        raise SystemExit('the reference samples are not finite: lower --temperature')
    print(f'{args.preset}, LR {size}x{size} -> SR {size * net.scale}x{size * net.scale}, {n} samples at '
          f'temperature {args.temperature} on {device}, {torch.get_num_threads()} threads')
    print(f'  {"path":<36s} {"total":>8s} {"per sample":>11s} {"speed-up":>9s} {"max |diff|":>11s}')
    for name, total in seconds.items():
        diff = (outputs[name] - reference).abs().max().item()
        speed_up = seconds['re-encode per sample, old inverse'] / total
        print(f'  {name:<36s} {total:7.2f}s {total / n * 1000:9.0f}ms {speed_up:8.2f}x {diff:11.2e}')
    print('  (speed-up and max |diff| against re-encoding per sample with the old inverse)')
    best = min(t for name, t in seconds.items() if name.startswith('reused'))
    print(f'  condition (encoder + LR-only flow parts) alone: {condition_time:.2f}s; the best reused path is '
          f'{seconds["re-encode per sample"] / best:.2f}x faster than re-encoding per sample with today\'s inverse')
    if not kept:
        print('  (freed memory could not be kept here: not glibc; the "memory kept" paths were not run)')
    print(f'  condition memory per HR pixel: {stored_bytes:.0f} bytes precomputed, {lazy_bytes:.0f} bytes with '
          'precompute=False')
    print(f'  {peak_memory_line(device)}')


if __name__ == '__main__':
    main()
