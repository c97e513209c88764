"""Prints the peak memory of ``srflow-sample --tile`` against the LR image size and the tile: the law of tiled memory.

    python scripts/benchmark_tiled_memory.py                        # a small SRFlowNet x4, LR 100..400, tile 32
    python scripts/benchmark_tiled_memory.py --sizes 200 400 --tiles 16 32 64 --num_samples 4

Each point runs ``srflow-sample`` (its ``main``) in a fresh process on one random LR image of n x n and prints that
process's peak resident memory minus the peak of the same process sampling a 16x16 image (imports, weights, the
allocator's reserve). The network is small (its tile memory is small), so the figures show what grows with the
image: the HR-size buffers of one batch of samples (their noise, latents and float output, and the 8-bit image
written). Figures, not assertions.
"""
import argparse
import os
import subprocess
import sys
import tempfile
from os import path as osp

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))


def run_point(folder, checkpoint, lr_size, tile, num_samples):
    """Peak resident memory (MiB) of one srflow-sample process on an lr_size x lr_size image."""
    image_dir = osp.join(folder, f'in{lr_size}')
    os.makedirs(image_dir, exist_ok=True)
    code = (
        'import resource, sys\n'
        'import cv2, numpy as np\n'
        f'cv2.imwrite({osp.join(image_dir, "a.png")!r}, np.random.default_rng(0).integers(0, 256, ({lr_size}, '
        f'{lr_size}, 3), dtype=np.uint8))\n'
        'from srflow_plugin.tools import sample\n'
        f'sample.main(["-i", {image_dir!r}, "-c", {checkpoint!r}, "-o", {osp.join(folder, "out")!r}, '
        f'"--temperatures", "0.8", "--num_samples", "{num_samples}", "--tile", "{tile}", "--tile_overlap", "8"])\n'
        'print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)\n')
    env = dict(os.environ, PYTHONPATH=REPO + os.pathsep + os.environ.get('PYTHONPATH', ''), OMP_NUM_THREADS='1')
    result = subprocess.run([sys.executable, '-c', code], env=env, capture_output=True, text=True, check=True)
    return float(result.stdout.strip().splitlines()[-1])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--sizes', type=int, nargs='+', default=[100, 200, 400], help='LR sides')
    parser.add_argument('--tiles', type=int, nargs='+', default=[32], help='tile sizes (even)')
    parser.add_argument('--num_samples', type=int, default=2)
    args = parser.parse_args(argv)
    from srflow_plugin.archs import SRFlowNet
    from srflow_plugin.utils.checkpoint import save_srflow
    config = dict(scale=4, num_feat=16, num_block=2, num_grow_ch=8, tap_blocks=[0, 1], flow_steps=2,
                  hidden_channels=16)
    with tempfile.TemporaryDirectory() as folder:
        checkpoint = osp.join(folder, 'net.pth')
        save_srflow(SRFlowNet(**config), checkpoint, {'type': 'SRFlowNet', **config})
        print(f'SRFlowNet({config}), {args.num_samples} samples at tau 0.8, overlap 8')
        for tile in args.tiles:
            base = run_point(folder, checkpoint, 16, tile, args.num_samples)
            print(f'tile {tile}: baseline (16x16 LR) {base:.0f} MiB')
            for size in args.sizes:
                peak = run_point(folder, checkpoint, size, tile, args.num_samples)
                hr_pixels = (4 * size)**2
                print(f'  LR {size}x{size} (HR {4 * size}x{4 * size}): {peak - base:7.0f} MiB above the baseline, '
                      f'{(peak - base) * 2**20 / hr_pixels:5.1f} bytes per HR pixel')


if __name__ == '__main__':
    main()
