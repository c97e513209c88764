"""Prints how long SRFlow sampling takes, with and without reusing the LR encoding, and the peak memory.

    python scripts/benchmark_sampling.py                       # released x4 layout, 32x32 LR, 4 samples, CPU
    python scripts/benchmark_sampling.py --preset SRFlow_DF2K_8X --lr_size 24 --samples 8 --device cuda

Random weights (the timing does not depend on them). Figures, not assertions: compare them across changes.
"""
import argparse

import torch

from benchmark_common import peak_memory_line, timed
from srflow_plugin.archs import RELEASED_CONFIGS, SRFlowNet


def _bytes(obj):
    if torch.is_tensor(obj):
        return obj.numel() * obj.element_size()
    return sum(_bytes(o) for o in obj) if isinstance(obj, (list, tuple)) else 0


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--preset', default='SRFlow_DF2K_4X', choices=sorted(RELEASED_CONFIGS))
    parser.add_argument('--lr_size', type=int, default=32, help='LR height and width')
    parser.add_argument('--samples', type=int, default=4)
    parser.add_argument('--temperature', type=float, default=0.9)
    parser.add_argument('--device', default='cpu')
    args = parser.parse_args(argv)

    device = torch.device(args.device)
    torch.manual_seed(0)
    net = SRFlowNet(**RELEASED_CONFIGS[args.preset]).to(device).eval()
    lq = torch.rand(1, 3, args.lr_size, args.lr_size, device=device)
    with torch.inference_mode():
        net.decode(lq, temperature=args.temperature)  # warm-up (and the 1x1 conv inverses' cache)
        condition_time = timed(lambda: net.condition(lq), device, 1)
        cond = net.condition(lq)
        reuse = timed(lambda: net.decode(cond=cond, temperature=args.temperature), device, args.samples)
        fresh = timed(lambda: net.decode(lq, temperature=args.temperature), device, args.samples)
        hr_pixels = (args.lr_size * net.scale)**2
        stored_bytes = _bytes(cond.level_conds) / hr_pixels
        lazy_bytes = _bytes(net.condition(lq, precompute=False).level_conds) / hr_pixels

    print(f'{args.preset}, LR {args.lr_size}x{args.lr_size} -> SR {args.lr_size * net.scale}x'
          f'{args.lr_size * net.scale}, {args.samples} samples on {device}')
    print(f'  condition (encoder + LR-only flow parts): {condition_time * 1000:9.1f} ms, once per LR image')
    print(f'  decode per sample, LR encoding reused:    {reuse * 1000:9.1f} ms')
    print(f'  decode per sample, LR encoded each time:  {fresh * 1000:9.1f} ms')
    print(f'  condition memory per HR pixel: {stored_bytes:.0f} bytes precomputed, {lazy_bytes:.0f} bytes with '
          'precompute=False')
    total_reuse = condition_time + args.samples * reuse
    print(f'  {args.samples} samples: {total_reuse:.2f} s reused vs {args.samples * fresh:.2f} s '
          f'({args.samples * fresh / total_reuse:.2f}x)')
    print(f'  {peak_memory_line(device)}')


if __name__ == '__main__':
    main()
