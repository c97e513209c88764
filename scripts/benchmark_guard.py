"""Multi-seed training on the demo's photographs with the spike guard on and off.

    python scripts/benchmark_guard.py                        # 1500 iterations, seeds 0 1 2, guard on and off
    python scripts/benchmark_guard.py --iters 400 --seeds 0 1 --threads 1

Configuration: SRFlowNet with num_feat 64, 2 RRDB blocks, taps [0, 1, 0, 1], K 4, one plain step, hidden 32, trunk
skip; batches of 8 random 48x48 GT crops of the demo's scikit-image training photographs (MATLAB-bicubic LR x4),
Adam 1e-3, gradient clipping at 10, MultiStepLR at 70 % and 90 %, no dequantisation (as the release). For each seed
both runs see the same crops in the same order, so they are identical until the guard first acts. Per seed and
mode it prints the final training NLL (mean of the last 50 iterations), the NLL of 32 held-out crops of the
validation photograph, skipped (non-finite) and rejected (spike) steps, roll-backs and whether every weight is
finite at the end.
"""
import argparse
import math
import tempfile
import time
from os import path as osp

import numpy as np

import srflow_plugin  # noqa: F401  # isort: skip  (before basicsr: installs the torchvision shim)
import torch
from basicsr.utils.matlab_functions import imresize
from demo import TRAIN_PHOTOS, VAL_PHOTO, photo

from srflow_plugin.models.srflow_model import SRFlowModel

NETWORK = dict(type='SRFlowNet', scale=4, num_feat=64, num_block=2, num_grow_ch=32, tap_blocks=[0, 1, 0, 1],
               flow_steps=4, plain_steps=1, hidden_channels=32, trunk_skip='trunk')


def crops(images, rng, n, size=48):
    """n random size x size GT crops (RGB in [0, 1], horizontal flips) and their LR x4 images, as tensors."""
    gts = []
    for _ in range(n):
        img = images[rng.integers(len(images))]
        y, x = rng.integers(0, img.shape[0] - size + 1), rng.integers(0, img.shape[1] - size + 1)
        crop = img[y:y + size, x:x + size]
        gts.append(np.ascontiguousarray(crop[:, ::-1] if rng.random() < 0.5 else crop))
    lqs = [np.clip(imresize(g, 0.25), 0, 1) for g in gts]
    return {'gt': _to_tensor(gts), 'lq': _to_tensor(lqs)}


def _to_tensor(arrays):
    return torch.from_numpy(np.ascontiguousarray(np.stack(arrays))).permute(0, 3, 1, 2).float()


def options(root, iters, guard_on):
    folders = {k: osp.join(root, k) for k in ('models', 'training_states', 'visualization', 'results_root')}
    return {
        'name': 'guard_benchmark', 'model_type': 'SRFlowModel', 'scale': 4, 'num_gpu': 0, 'is_train': True,
        'dist': False, 'rank': 0, 'world_size': 1, 'manual_seed': 0, 'network_g': dict(NETWORK),
        'path': dict(folders, experiments_root=root, log=root),
        'train': {
            'total_iter': iters, 'grad_clip_norm': 10,
            'optim_g': {'type': 'Adam', 'lr': 1e-3, 'betas': [0.9, 0.999]},
            'scheduler': {'type': 'MultiStepLR', 'milestones': [int(0.7 * iters), int(0.9 * iters)], 'gamma': 0.5},
            'guard': {'enabled': guard_on},
        },
    }


def train(seed, iters, guard_on, train_images, held_out):
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    with tempfile.TemporaryDirectory() as root:
        model = SRFlowModel(options(root, iters, guard_on))
        losses = []
        for it in range(1, iters + 1):
            model.feed_data(crops(train_images, rng, 8))
            model.update_learning_rate(it)
            model.optimize_parameters(it)
            losses.append(float(model.log_dict.get('l_nll', float('nan'))))
            if it % 50 == 0:
                print(f'  seed {seed} guard {"on" if guard_on else "off"}: iteration {it}, NLL {losses[-1]:.3f}',
                      flush=True)
        net = model.get_bare_model(model.net_g).eval()
        finite = all(bool(torch.isfinite(p).all()) for p in net.state_dict().values())
        with torch.no_grad():
            held_nll = float(net.encode(held_out['gt'], held_out['lq'])[1].mean())
    last = [v for v in losses[-50:] if math.isfinite(v)]
    return dict(train_nll=float(np.mean(last)) if last else float('nan'), held_nll=held_nll,
                skipped=model.skipped_steps, rejected=model.guard.rejected_steps, rollbacks=model.guard.rollbacks,
                finite=finite)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--iters', type=int, default=1500, help='Iterations per run. Default: 1500.')
    parser.add_argument('--seeds', type=int, nargs='+', default=[0, 1, 2], help='Seeds. Default: 0 1 2.')
    parser.add_argument('--threads', type=int, default=2, help='torch threads. Default: 2.')
    args = parser.parse_args(argv)
    if args.iters < 1:
        parser.error(f'--iters must be >= 1, got {args.iters}')
    torch.set_num_threads(args.threads)
    rgb = lambda name: np.ascontiguousarray(photo(name)[..., ::-1]).astype(np.float32) / 255  # noqa: E731
    train_images = [rgb(name) for name in TRAIN_PHOTOS]
    held_out = crops([rgb(VAL_PHOTO)], np.random.default_rng(1234), 32)
    print(f'{args.iters} iterations per run, batch 8 of 48x48 crops of {", ".join(TRAIN_PHOTOS)}; held-out: 32 '
          f'crops of {VAL_PHOTO}', flush=True)
    print(f'{"seed":>4} {"guard":>5} {"train NLL":>10} {"held-out NLL":>12} {"skipped":>7} {"rejected":>8} '
          f'{"roll-backs":>10} {"finite":>6} {"time":>6}', flush=True)
    for seed in args.seeds:
        for guard_on in (True, False):
            start = time.time()
            r = train(seed, args.iters, guard_on, train_images, held_out)
            print(f'{seed:>4} {"on" if guard_on else "off":>5} {r["train_nll"]:>10.3f} {r["held_nll"]:>12.3f} '
                  f'{r["skipped"]:>7d} {r["rejected"]:>8d} {r["rollbacks"]:>10d} {str(r["finite"]):>6} '
                  f'{time.time() - start:>5.0f}s', flush=True)


if __name__ == '__main__':
    main()
