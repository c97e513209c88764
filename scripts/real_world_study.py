"""Real-world degradations, noise conditioning and safe sampling, measured side by side at CPU scale.

    python scripts/real_world_study.py [--output real_world_output] [--iters 400] [--seeds 0 1] [--quick]
    python scripts/real_world_study.py --output real_world_output --report   # tables of earlier runs' JSON files

Nothing is downloaded. For every seed the run
 1. makes the flow-versus-GAN study's data (``demo_data.study_data``): 128x128 sub-images of
    scikit-image's photographs with MATLAB-bicubic x4 LR (LMDB), and 96x96 held-out crops (``TEST_SIZE``, side by
    side) of the photographs that study tests on, with their bicubic LR; plus a second LR of each held-out crop
    degraded by Real-ESRGAN's pipeline (BasicSR's ``RealESRNetModel.feed_data`` through :class:`RealSRFlowModel`,
    the kernels of ``RealESRGANDataset``, seeded);
 2. trains three SRFlow models with the same small network, batch, learning rate and iterations, in this process
    with the package's model classes: *bicubic* (``SRFlowModel`` on the bicubic pairs), *degradation*
    (``RealSRFlowModel`` on the same GT, LR synthesised on the fly; no USM sharpening, so every model targets the
    same GT) and *noise-conditioned* (``SRFlowModel`` with ``train.noise_conditioning.max_std``);
 3. measures on the held-out crops: PSNR at tau 0, LPIPS (AlexNet) and LR-PSNR (against the LR given) at tau 0.8
    (3 samples), on bicubic and on degraded LR; the NLL of the clean GT given the bicubic LR (bits/dim, discrete
    8-bit scale: dequantised with seeded U(-0.5, 0.5)/256 noise, + log2(256), level 0 for the conditioned model) and
    the NTIRE diversity (3 samples, spatial LPIPS); and safe sampling at tau 0.9-1.2 (3 samples per crop): bad
    pixels (non-finite or outside [-0.5, 1.5]) before and after, LPIPS and LR-PSNR of the repaired samples and of the
    untouched ones.
Tables are printed and written to ``<output>/results.md`` (mean over seeds, then per seed).
"""
import argparse
import glob
import json
import os
import sys
import time
from collections import OrderedDict
from os import path as osp

import numpy as np
import torch

import srflow_plugin  # noqa: F401  # isort: skip  (before basicsr: installs the torchvision shim)
from basicsr.data import build_dataset
from basicsr.metrics import calculate_psnr
from basicsr.models import build_model
from basicsr.utils import set_random_seed

from srflow_plugin.inference.safe_sampling import bad_pixel_mask, decode_safely
from srflow_plugin.losses import FlowNLLLoss
from srflow_plugin.metrics import calculate_lpips, calculate_lr_psnr, diversity_score, lpips_distance
from srflow_plugin.models import RealSRFlowModel
from srflow_plugin.tools.command import HelpFormatter, console_command
from srflow_plugin.utils.image import images_in, nonfinite_pixels, read_image, to_image, to_tensor
from srflow_plugin.utils.sampling import draw_noise, image_generator, scaled
from srflow_plugin.utils.table import write_text
from demo_data import study_data

SCALE = 4
NETWORK = dict(type='SRFlowNet', scale=SCALE, num_feat=16, num_block=2, num_grow_ch=8, tap_blocks=[0, 1],
               flow_steps=4, plain_steps=1, hidden_channels=32)  # scripts/demo.py's network
MAX_STD = 0.02  # noise conditioning: up to about 5 gray levels
BATCH, GT_SIZE, LR = 8, 48, 1e-3
TEST_SIZE = 96  # held-out crops: Real-ESRGAN's second-order degradation needs more than 64 pixels (its 21-tap kernels)
SAFE_TEMPERATURES = [0.9, 1.0, 1.1, 1.2]
KERNELS = ['iso', 'aniso', 'generalized_iso', 'generalized_aniso', 'plateau_iso', 'plateau_aniso']
MODELS = ('bicubic', 'degradation', 'noise-conditioned')


def kernel_options(gt_folder, crop_pad_size, meta_info=None):
    """``RealESRGANCropDataset`` options with Real-ESRGAN's x4plus kernel settings."""
    backend = {'type': 'disk'} if meta_info else {'type': 'lmdb'}
    opt = dict(name='real_world', type='RealESRGANCropDataset', phase='train', dataroot_gt=gt_folder,
               io_backend=backend, crop_pad_size=crop_pad_size, use_hflip=meta_info is None, use_rot=False)
    if meta_info:
        opt['meta_info'] = meta_info
    for suffix, sigma in (('', [0.2, 3]), ('2', [0.2, 1.5])):
        opt.update({f'blur_kernel_size{suffix}': 21, f'kernel_list{suffix}': KERNELS,
                    f'kernel_prob{suffix}': [0.45, 0.25, 0.12, 0.03, 0.12, 0.03], f'sinc_prob{suffix}': 0.1,
                    f'blur_sigma{suffix}': sigma, f'betag_range{suffix}': [0.5, 4], f'betap_range{suffix}': [1, 2]})
    opt['final_sinc_prob'] = 0.8
    return opt


def model_options(root, name, kind, iters, extra_top=None):
    opt = {
        'name': name, 'model_type': 'RealSRFlowModel' if kind == 'degradation' else 'SRFlowModel', 'scale': SCALE,
        'num_gpu': 0, 'is_train': True, 'dist': False, 'rank': 0, 'world_size': 1,
        'network_g': dict(NETWORK, noise_conditioning=kind == 'noise-conditioned'),
        'path': {'experiments_root': osp.join(root, name), 'models': osp.join(root, name, 'models'),
                 'training_states': osp.join(root, name, 'training_states'), 'log': osp.join(root, name),
                 'visualization': osp.join(root, name, 'visualization')},
        'train': {'nll_opt': {'type': 'FlowNLLLoss', 'quantization': 256}, 'train_rrdb_delay': 0,
                  'grad_clip_norm': 10.0, 'optim_g': {'type': 'Adam', 'lr': LR, 'betas': [0.9, 0.999]},
                  'scheduler': {'type': 'MultiStepLR', 'milestones': [int(iters * 0.8)], 'gamma': 0.5},
                  'total_iter': iters, 'guard': {'enabled': False}},
    }
    if kind == 'noise-conditioned':
        opt['train']['noise_conditioning'] = {'max_std': MAX_STD}
    if kind == 'degradation':
        opt.update(gt_size=GT_SIZE, gt_usm=False, queue_size=4 * BATCH)
    opt.update(extra_top or {})
    return opt


def seed_everything(seed):
    set_random_seed(seed)


def train_model(root, kind, data, iters, seed):
    """Trains one model in this process; returns (network in eval mode, seconds)."""
    seed_everything(seed)
    train_set, _ = data
    if kind == 'degradation':
        dataset = build_dataset(kernel_options(train_set['gt_lmdb'], 128))
    else:
        dataset = build_dataset(dict(name='photos', type='PairedImageDataset', phase='train',
                                     dataroot_gt=train_set['gt_lmdb'], dataroot_lq=train_set['lr_lmdb'][SCALE],
                                     io_backend={'type': 'lmdb'}, gt_size=GT_SIZE, use_hflip=True, use_rot=False,
                                     scale=SCALE))
    loader = torch.utils.data.DataLoader(dataset, batch_size=BATCH, shuffle=True, drop_last=True,
                                         generator=torch.Generator().manual_seed(seed))
    model = build_model(model_options(root, f'{kind}_s{seed}', kind, iters))
    start, it = time.time(), 0
    while it < iters:
        for batch in loader:
            it += 1
            model.update_learning_rate(it, warmup_iter=-1)
            model.feed_data(batch)
            model.optimize_parameters(it)
            if it == iters:
                break
    net = model.get_bare_model(model.net_g).eval()
    return net, time.time() - start


@torch.no_grad()
def degraded_test_lr(test_gt_folder, names, seed):
    """The held-out GT crops' LR made by Real-ESRGAN's pipeline (RealSRFlowModel.feed_data), seeded; [N, 3, h, w]."""
    meta = osp.join(test_gt_folder, 'meta_info_real_world.txt')
    with open(meta, 'w') as f:
        f.write(''.join(f'{n}.png\n' for n in names))
    seed_everything(1000 + seed)
    dataset = build_dataset(kernel_options(test_gt_folder, TEST_SIZE, meta))
    root = osp.join(osp.dirname(test_gt_folder), 'degrader')
    model = RealSRFlowModel(model_options(root, 'degrader', 'degradation', 1, {'gt_size': TEST_SIZE, 'queue_size': 0}))
    lrs = []
    for i in range(len(dataset)):
        item = dataset[i]
        model.feed_data({k: item[k][None] for k in ('gt', 'kernel1', 'kernel2', 'sinc_kernel')})
        lrs.append(model.lq)
    return torch.cat(lrs)


def read_test_set(test_set):
    gt_paths = images_in(test_set['gt'])
    names = [osp.splitext(osp.basename(p))[0] for p in gt_paths]
    gts = [read_image(p) for p in gt_paths]
    lrs = [read_image(osp.join(test_set['lr'][SCALE], osp.basename(p))) for p in gt_paths]
    return names, gts, lrs


def _mean(values):
    values = [v for v in values if v is not None and np.isfinite(v)]
    return float(np.mean(values)) if values else float('nan')


@torch.no_grad()
def measure_sr(net, lq_batch, gts, seed, samples=3, temperature=0.8):
    """PSNR at tau 0, LPIPS / LR-PSNR at tau, diversity over the samples; means over images."""
    rows = []
    for i, gt in enumerate(gts):
        lq = lq_batch[i:i + 1]
        lq_img = to_image(lq)
        cond = net.condition(lq)
        mode = to_image(net.decode(cond=cond, temperature=0.0))
        noise = draw_noise(net, *lq.shape[-2:], samples, image_generator(seed, f'img{i}'))
        srs = [net.decode(cond=cond, latents=scaled(z, temperature)) for z in noise]
        imgs = [to_image(sr) for sr in srs]
        gt_t = to_tensor(gt)
        maps = lpips_distance(torch.cat([to_tensor(im) for im in imgs]), gt_t, spatial=True)
        rows.append({'psnr_t0': calculate_psnr(mode, gt, crop_border=SCALE),
                     'lpips': float(maps.mean(dim=(1, 2, 3)).mean()),
                     'lr_psnr': _mean([calculate_lr_psnr(im, gt, lq=lq_img) for im in imgs]),
                     'diversity': diversity_score(maps)})
    return {key: _mean([r[key] for r in rows]) for key in rows[0]}


@torch.no_grad()
def measure_nll(net, lq_batch, gts, seed):
    """NLL of the clean GT (bits/dim) on the discrete 8-bit scale: seeded dequantisation + log2(256)."""
    loss = FlowNLLLoss(quantization=256, reduction='none')
    generator = torch.Generator().manual_seed(seed)
    values = []
    for i, gt in enumerate(gts):
        gt_t = loss.dequantize(to_tensor(gt), generator=generator)
        values.append(float(loss(net.encode(gt_t, lq_batch[i:i + 1])[1])))
    return _mean(values)


@torch.no_grad()
def measure_safe_sampling(net, lq_batch, gts, seed, samples=3):
    """Per temperature: bad / non-finite pixels before and after safe sampling; LPIPS and LR-PSNR of the repaired
    samples (after) and of the untouched ones."""
    out = OrderedDict()
    for t in SAFE_TEMPERATURES:
        rec = dict(samples=0, repaired=0, bad_before=0, nonfinite_before=0, bad_after=0, nonfinite_after=0)
        metrics = {'repaired': [], 'untouched': []}
        for i, gt in enumerate(gts):
            lq = lq_batch[i:i + 1]
            lq_img = to_image(lq)
            cond = net.condition(lq)
            for z in draw_noise(net, *lq.shape[-2:], samples, image_generator(seed, f'safe{i}')):
                latents = scaled(z, t)
                sr = net.decode(cond=cond, latents=latents)
                rec['samples'] += 1
                rec['bad_before'] += int(bad_pixel_mask(sr).sum())
                rec['nonfinite_before'] += nonfinite_pixels(sr)
                fixed, repair = decode_safely(lambda lat: net.decode(cond=cond, latents=lat), latents, sr)
                rec['bad_after'] += int(bad_pixel_mask(fixed).sum())
                rec['nonfinite_after'] += nonfinite_pixels(fixed)
                rec['repaired'] += int(repair.pixels > 0)
                img = to_image(fixed)
                metrics['repaired' if repair.pixels else 'untouched'].append(
                    (calculate_lpips(img, gt), calculate_lr_psnr(img, gt, lq=lq_img)))
        for group, values in metrics.items():
            rec[f'lpips_{group}'] = _mean([v[0] for v in values])
            rec[f'lr_psnr_{group}'] = _mean([v[1] for v in values])
        out[str(t)] = rec
    return out


def _table(header, rows):
    lines = ['| ' + ' | '.join(header) + ' |', '|' + '---|' * len(header)]
    for row in rows:
        lines.append('| ' + ' | '.join(f'{v:.3f}' if isinstance(v, float) else str(v) for v in row) + ' |')
    return '\n'.join(lines)


def report(results):
    """Markdown tables: mean over seeds of every figure, then the seeds one by one."""
    seeds = sorted(results)
    parts = []
    for title, seed_list in [(f'mean over seeds {seeds}', seeds)] + [(f'seed {s}', [s]) for s in seeds]:
        res = {s: results[s] for s in seed_list}

        def avg(get):
            return _mean([get(r) for r in res.values()])

        parts.append(f'### {title}\n')
        rows = []
        for kind in MODELS:
            for lr_kind in ('bicubic', 'degraded'):
                rows.append([kind, lr_kind] + [avg(lambda r: r[kind]['sr'][lr_kind][k])
                                               for k in ('psnr_t0', 'lpips', 'lr_psnr', 'diversity')])
        parts.append(_table(['trained on', 'test LR', 'PSNR t0', 'LPIPS t0.8', 'LR-PSNR t0.8', 'diversity t0.8'],
                            rows) + '\n')
        parts.append(_table(['model', 'NLL clean GT (bits/dim, 8-bit scale)', 'train s'],
                            [[k, avg(lambda r: r[k]['nll']), avg(lambda r: r[k]['seconds'])] for k in MODELS]) + '\n')
        rows = []
        for kind in MODELS:
            for t in SAFE_TEMPERATURES:
                keys = ('samples', 'repaired', 'bad_before', 'nonfinite_before', 'bad_after', 'nonfinite_after',
                        'lpips_repaired', 'lpips_untouched', 'lr_psnr_repaired', 'lr_psnr_untouched')
                rows.append([kind, t] + [avg(lambda r: float(r[kind]['safe'][str(t)][k])) for k in keys])
        parts.append(_table(['model', 'tau', 'samples', 'repaired', 'bad px before', 'non-finite before',
                             'bad px after', 'non-finite after', 'LPIPS repaired', 'LPIPS untouched',
                             'LR-PSNR repaired', 'LR-PSNR untouched'], rows) + '\n')
    return '\n'.join(parts)


def run_seed(out_dir, seed, iters, quick, log):
    root = osp.join(out_dir, f'seed{seed}')
    os.makedirs(root, exist_ok=True)
    data = study_data(osp.join(root, 'data'), quick, log_path=osp.join(root, 'prepare.log'), test_size=TEST_SIZE,
                      test_stride=TEST_SIZE)
    names, gts, lrs = read_test_set(data[1])
    lq_sets = {'bicubic': torch.cat([to_tensor(lr) for lr in lrs]),
               'degraded': degraded_test_lr(data[1]['gt'], names, seed)}
    result = {}
    for kind in MODELS:
        net, seconds = train_model(osp.join(root, 'experiments'), kind, data, iters, seed)
        log(f'seed {seed}: {kind} trained, {iters} iterations in {seconds:.0f} s')
        result[kind] = {'seconds': seconds,
                        'sr': {k: measure_sr(net, lq, gts, seed) for k, lq in lq_sets.items()},
                        'nll': measure_nll(net, lq_sets['bicubic'], gts, seed),
                        'safe': measure_safe_sampling(net, lq_sets['bicubic'], gts, seed)}
        log(f'seed {seed}: {kind} measured: {result[kind]["sr"]}, nll {result[kind]["nll"]:.4f}')
    return result


def main(argv=None):
    parser = argparse.ArgumentParser(prog='real_world_study', description=__doc__, formatter_class=HelpFormatter)
    parser.add_argument('--output', default='real_world_output', help='output folder')
    parser.add_argument('--iters', type=int, default=400, help='training iterations of every model')
    parser.add_argument('--seeds', type=int, nargs='+', default=[0, 1], help='one run of the three models per seed')
    parser.add_argument('--quick', action='store_true', help='a smoke run: 4 iterations, two photographs, seed 0')
    parser.add_argument('--report', action='store_true', help='train nothing: tabulate the results_seed*.json that '
                        'earlier runs (e.g. one process per seed) left in --output')
    parser.add_argument('--threads', type=int, default=1, help='torch threads (on shared cores one thread per '
                        'process is far faster than two competing ones)')
    args = parser.parse_args(argv)
    iters, seeds = (4, [0]) if args.quick else (args.iters, args.seeds)
    os.makedirs(args.output, exist_ok=True)
    torch.set_num_threads(args.threads)

    def log(message):
        print(message, flush=True)

    results = {}
    if args.report:
        for path in sorted(glob.glob(osp.join(args.output, 'results_seed*.json'))):
            with open(path) as f:
                saved = json.load(f)
            results[saved['seed']] = saved['result']
            iters = saved['iters']
    for seed in [] if args.report else seeds:
        results[seed] = run_seed(args.output, seed, iters, args.quick, log)
        with open(osp.join(args.output, f'results_seed{seed}.json'), 'w') as f:
            json.dump({'seed': seed, 'iters': iters, 'result': results[seed]}, f, indent=1)
    if not results:
        raise FileNotFoundError(f'no results_seed*.json in {args.output}')
    log(write_results(args.output, results, iters))
    return results


def write_results(output, results, iters):
    """``<output>/results.md``: the settings and :func:`report`'s tables; returns them with the file's name."""
    text = (f'Network {NETWORK}, batch {BATCH}, GT crops {GT_SIZE}, Adam lr {LR}, {iters} iterations, noise '
            f'conditioning max_std {MAX_STD}.\n\n' + report(results))
    path = osp.join(output, 'results.md')
    write_text(text, path)
    return f'{text}\nwritten to {path}'


cli = console_command(main, 'real_world_study')

if __name__ == '__main__':
    sys.exit(cli())
