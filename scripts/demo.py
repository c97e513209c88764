"""Built-in demo: train a small SRFlow x4 on photographs shipped with scikit-image, on the CPU, in minutes.

    python scripts/demo.py            # 800 iterations, about 4 minutes on 2 free CPU cores
    python scripts/demo.py --quick    # a smoke run of 20 iterations (under a minute)

Nothing is downloaded. The demo
 1. writes a few scikit-image photographs as HR images, cuts them into sub-images and makes MATLAB-bicubic
    LR x4 images and LMDBs with srflow-prepare-data (the validation photo, the cat, is never trained on);
 2. writes an option file and trains through BasicSR's real training pipeline (python -m srflow_plugin.train);
 3. measures NLL, PSNR and LR-PSNR (tau = 0) on the validation image for the untrained network (ActNorm
    initialised on a training batch) and for the trained one, and prints both beside MATLAB bicubic and the
    package's built-in model (docs/model-card.md; the cat is one of its held-out photos);
 4. saves demo_grid.png: LR (nearest), bicubic, tau = 0, three samples at tau = 0.8, GT.
Outputs go to demo_output/ (experiments/, results of the run, summary.json, demo_grid.png).
"""
import argparse
import json
import os
import re
import subprocess
import sys
import time
from os import path as osp

import yaml

import srflow_plugin  # noqa: F401  # isort: skip  (before basicsr: installs the torchvision shim)
import torch
from basicsr.archs import build_network
from basicsr.data import build_dataset
from basicsr.metrics import calculate_psnr
from basicsr.utils import set_random_seed

from srflow_plugin.inference.grid import bicubic_upscale, make_grid, nearest_upscale
from srflow_plugin.inference.loading import load_srflow
from srflow_plugin.inference.sampling import sample_image
from srflow_plugin.losses import FlowNLLLoss
from srflow_plugin.metrics import bicubic_upscale_matlab, calculate_lr_psnr
from srflow_plugin.pretrained import builtin_checkpoint
from srflow_plugin.utils.image import read_image, to_image, to_tensor, write_image
from srflow_plugin.utils.sampling import image_generator
import demo_data
from demo_data import SCALE, photo

VAL_PHOTO = 'chelsea'
NETWORK = dict(type='SRFlowNet', scale=SCALE, num_feat=16, num_block=2, num_grow_ch=8, tap_blocks=[0, 1],
               flow_steps=4, plain_steps=1, hidden_channels=32)
QUANTIZATION = 256  # 8-bit images: dequantisation noise, so the NLL is that of the discrete image


def make_data(root, quick, log_path):
    """Training LMDBs of sub-images and a validation folder pair (the cat, never trained on); returns the paths."""
    cat = photo(VAL_PHOTO)  # 300 x 451: a 128 x 128 crop around the face
    return demo_data.make_data(root, {VAL_PHOTO: cat[40:168, 140:268]}, quick, crop_size=96, step=48 if quick else 32,
                               names=('demo_train', 'demo_val'), held_out_folder='hr_val', log_path=log_path)


def write_options(out_dir, data, iters, quick):
    train, val = data
    opt = {
        'name': 'SRFlow_demo_x4',
        'model_type': 'SRFlowModel',
        'scale': SCALE,
        'num_gpu': 0,
        'manual_seed': 0,
        'datasets': {
            'train': dict(name='skimage_photos', type='PairedImageDataset', dataroot_gt=train['gt_lmdb'],
                          dataroot_lq=train['lr_lmdb'][SCALE], io_backend={'type': 'lmdb'}, gt_size=48,
                          use_hflip=True, use_rot=False, num_worker_per_gpu=0, batch_size_per_gpu=8,
                          dataset_enlarge_ratio=1),
            'val': dict(name='cat', type='PairedImageDataset', dataroot_gt=val['gt'], dataroot_lq=val['lr'][SCALE],
                        io_backend={'type': 'disk'}),
        },
        'network_g': dict(NETWORK),
        'path': {'pretrain_network_g': None, 'strict_load_g': True, 'resume_state': None},
        'train': {
            'nll_opt': {'type': 'FlowNLLLoss', 'quantization': QUANTIZATION},
            'train_rrdb_delay': 0,  # no pretrained encoder here: train it from the start
            'grad_clip_norm': 10.0,
            'optim_g': {'type': 'Adam', 'lr': 1e-3, 'betas': [0.9, 0.999]},
            'scheduler': {'type': 'MultiStepLR', 'milestones': [int(iters * 0.7), int(iters * 0.9)], 'gamma': 0.5},
            'total_iter': iters,
        },
        'val': {
            'val_freq': iters if quick else max(iters // 2, 1),
            'save_img': True,
            'heats': [0.0, 0.8],
            'n_sample': 3,
            'metrics': {'psnr': {'type': 'calculate_psnr', 'crop_border': SCALE},
                        'lr_psnr': {'type': 'calculate_lr_psnr', 'crop_border': 0}},
        },
        'logger': {'print_freq': max(iters // 10, 1), 'save_checkpoint_freq': iters, 'use_tb_logger': False},
    }
    yml = osp.join(out_dir, 'demo_x4.yml')
    with open(yml, 'w') as f:
        yaml.safe_dump(opt, f, sort_keys=False)
    return yml, opt


def read_pair(val):
    name = f'{VAL_PHOTO}.png'
    return read_image(osp.join(val['lr'][SCALE], name)), read_image(osp.join(val['gt'], name))


def image_scores(sr, lq, gt):
    return {'psnr': float(calculate_psnr(sr, gt, crop_border=SCALE)),
            'lr_psnr': float(calculate_lr_psnr(sr, gt, lq=lq, crop_border=0))}


@torch.no_grad()
def evaluate(net, lq, gt):
    """NLL (bits/dim, with the 8-bit dequantisation constant), PSNR and LR-PSNR of the tau = 0 output."""
    net.eval()
    lq_t, gt_t = to_tensor(lq), to_tensor(gt)
    cond = net.condition(lq_t)
    nll = FlowNLLLoss(quantization=QUANTIZATION)(net.encode(gt_t, cond=cond)[1]).item()
    sr = to_image(net.decode(cond=cond, temperature=0.0))
    return {'nll': nll, **image_scores(sr, lq, gt)}


def untrained_network(opt):
    """The network as training starts: seeded like the run, ActNorm initialised on one training batch."""
    set_random_seed(opt['manual_seed'])  # random crops and flips use Python's and numpy's generators too
    net = build_network(dict(opt['network_g']))
    dataset_opt = dict(opt['datasets']['train'], phase='train', scale=SCALE)
    dataset = build_dataset(dataset_opt)
    items = [dataset[i] for i in range(min(len(dataset), dataset_opt['batch_size_per_gpu']))]
    lq = torch.stack([item['lq'] for item in items])
    gt = torch.stack([item['gt'] for item in items])
    net.train()
    with torch.no_grad():
        net.encode(FlowNLLLoss(quantization=QUANTIZATION).dequantize(gt), lq)
    return net


def picture_grid(net, lq, gt, path, seed=0):
    """LR (nearest), bicubic, tau = 0, three samples at tau = 0.8 and GT side by side, labelled; the samples are
    those ``srflow-sample --seed <seed> --temperatures 0 0.8`` draws."""
    drawn = sample_image(net.eval(), to_tensor(lq), [0.0, 0.8], 3, image_generator(seed, VAL_PHOTO))
    samples = {key: to_image(sr) for key, sr in drawn.items()}
    tiles = [('LR (nearest)', nearest_upscale(lq, SCALE)), ('bicubic', bicubic_upscale(lq, SCALE)),
             ('tau=0', samples[(0.0, 0)])]
    tiles += [(f'tau=0.8 #{k + 1}', samples[(0.8, k)]) for k in range(3)]
    write_image(make_grid([tiles + [('GT', gt)]]), path)


def train(yml, out_dir, iters, verbose):
    """Runs ``python -m srflow_plugin.train`` on ``yml`` with this process's package, printing its progress (the
    iteration BasicSR's log reached) every few seconds, or the whole log with ``verbose``."""
    package_root = osp.dirname(osp.dirname(osp.abspath(srflow_plugin.__file__)))
    env = dict(os.environ, PYTHONPATH=package_root + os.pathsep + os.environ.get('PYTHONPATH', ''))
    log_path = osp.join(out_dir, 'train_output.log')
    print(f'      log: {log_path}', flush=True)
    with open(log_path, 'w') as log:
        process = subprocess.Popen([sys.executable, '-m', 'srflow_plugin.train', '-opt', yml], cwd=out_dir, env=env,
                                   stdout=None if verbose else log, stderr=None if verbose else subprocess.STDOUT)
        shown, running = 0, True
        while running:
            running = process.poll() is None
            if running:
                time.sleep(0.5 if verbose else 5)
            if not verbose:
                with open(log_path) as f:
                    reached = [int(i) for i in re.findall(r'iter:\s*(\d+)', f.read().replace(',', ''))]
                if reached and reached[-1] > shown:
                    shown = reached[-1]
                    print(f'      iteration {shown}/{iters}', flush=True)
    if process.returncode:
        raise SystemExit(f'Training failed (exit status {process.returncode}); see {log_path}')


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--output', default='demo_output', help='Output folder. Default: demo_output')
    parser.add_argument('--iters', type=int, default=None, help='Training iterations. Default: 800 (20 with --quick)')
    parser.add_argument('--quick', action='store_true', help='Smoke run: 2 photos, 20 iterations.')
    parser.add_argument('--verbose', action='store_true', help='Show the training log while it runs.')
    args = parser.parse_args(argv)
    iters = args.iters or (20 if args.quick else 800)
    out_dir = osp.abspath(args.output)
    os.makedirs(out_dir, exist_ok=True)

    print(f'[1/4] Preparing data from scikit-image photographs in {out_dir}/data ...', flush=True)
    data = make_data(osp.join(out_dir, 'data'), args.quick, osp.join(out_dir, 'prepare_data.log'))
    yml, opt = write_options(out_dir, data, iters, args.quick)
    lq, gt = read_pair(data[1])
    start = evaluate(untrained_network(opt), lq, gt)

    print(f'[2/4] Training {iters} iterations on the CPU (python -m srflow_plugin.train -opt {yml}) ...', flush=True)
    train(yml, out_dir, iters, args.verbose)
    exp_dir = osp.join(out_dir, 'experiments', opt['name'])
    checkpoint = osp.join(exp_dir, 'models', 'net_g_latest.pth')

    print('[3/4] Evaluating on the validation photo (never trained on) ...', flush=True)
    net = load_srflow(checkpoint, opt)
    end = evaluate(net, lq, gt)
    bicubic = image_scores(bicubic_upscale_matlab(lq, SCALE), lq, gt)
    builtin = evaluate(load_srflow(builtin_checkpoint()), lq, gt)
    print(f"{'':>8s} {'NLL (bits/dim)':>15s} {'PSNR tau=0':>11s} {'LR-PSNR tau=0':>14s}")
    for label, values in (('start', start), ('end', end), ('bicubic', bicubic), ('built-in', builtin)):
        nll = f"{values['nll']:15.3f}" if 'nll' in values else f"{'-':>15s}"
        print(f"{label:>8s} {nll} {values['psnr']:11.2f} {values['lr_psnr']:14.2f}")
    print('      (start/end: the model trained here; bicubic: MATLAB bicubic of the same LR image; built-in: the '
          'model srflow-sample uses without -c)')

    grid = osp.join(out_dir, 'demo_grid.png')
    picture_grid(net, lq, gt, grid)
    summary = {'iterations': iters, 'start': start, 'end': end, 'bicubic': bicubic, 'builtin': builtin,
               'grid': grid, 'checkpoint': checkpoint,
               'experiment': exp_dir, 'options': yml}
    with open(osp.join(out_dir, 'summary.json'), 'w') as f:
        json.dump(summary, f, indent=2)
    print(f'[4/4] Picture grid: {grid}\n      Training log and validation images: {exp_dir}', flush=True)
    return summary


if __name__ == '__main__':
    main()
