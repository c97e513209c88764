"""Prints the time and peak memory of SRFlow training steps (NLL, backward, Adam) for a configuration.

    python scripts/benchmark_training.py                                  # released x4 layout, 2 x 64x64 GT patches, CPU
    python scripts/benchmark_training.py --patch 160 --batch 12 --device cuda   # the release's x4 recipe on a GPU
    python scripts/benchmark_training.py --frozen_encoder                 # as during train_rrdb_delay

Random weights and images (the cost does not depend on them). Figures, not assertions: compare them across changes.
"""
import argparse

import torch

from benchmark_common import peak_memory_line, reset_peak_memory, timed
from srflow_plugin.archs import RELEASED_CONFIGS, SRFlowNet


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--preset', default='SRFlow_DF2K_4X', choices=sorted(RELEASED_CONFIGS))
    parser.add_argument('--patch', type=int, default=64, help='GT patch size (a multiple of 2 x scale)')
    parser.add_argument('--batch', type=int, default=2)
    parser.add_argument('--steps', type=int, default=3, help='timed steps, after one warm-up step')
    parser.add_argument('--frozen_encoder', action='store_true', help='no gradients for the encoder')
    parser.add_argument('--device', default='cpu')
    args = parser.parse_args(argv)

    device = torch.device(args.device)
    torch.manual_seed(0)
    net = SRFlowNet(**RELEASED_CONFIGS[args.preset]).to(device).train()
    if args.patch % (2 * net.scale):
        raise SystemExit(f'--patch {args.patch} is not a multiple of 2 x scale = {2 * net.scale}')
    net.encoder.requires_grad_(not args.frozen_encoder)
    optimizer = torch.optim.Adam([p for p in net.parameters() if p.requires_grad], lr=1e-4)
    gt = torch.rand(args.batch, 3, args.patch, args.patch, device=device)
    lq = torch.nn.functional.avg_pool2d(gt, net.scale)

    def step():
        optimizer.zero_grad(set_to_none=True)
        nll = net.encode(gt, lq)[1].mean()
        nll.backward()
        optimizer.step()
        return nll.item()

    step()  # warm-up, including the ActNorm data-dependent initialisation
    reset_peak_memory(device)
    per_step = timed(step, device, args.steps)

    print(f'{args.preset}, batch {args.batch} x {args.patch}x{args.patch} GT, encoder '
          f'{"frozen" if args.frozen_encoder else "trained"}, on {device}')
    print(f'  training step (NLL + backward + Adam): {per_step * 1000:9.1f} ms, '
          f'{args.batch * args.patch**2 / per_step / 1e6:.3f} M GT pixels/s')
    print(f'  {peak_memory_line(device)}')


if __name__ == '__main__':
    main()
