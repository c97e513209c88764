"""Tiny configurations, option dicts and data for the SRFlowModel / training tests."""
import contextlib
import functools
import os
from copy import deepcopy
from os import path as osp

import cv2
import numpy as np
import torch
import yaml

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))  # tests/helpers/ -> the repository
SCALE = 4
TINY_NET = dict(type='SRFlowNet', scale=SCALE, num_feat=8, num_block=1, num_grow_ch=4, tap_blocks=[0], flow_steps=1,
                plain_steps=1, hidden_channels=8)


def make_opt(tmp_path, train=None, val=None, path=None, is_train=True, num_gpu=0, **extra):
    """A parsed-option dict as BasicSR's parse_options returns it, for building SRFlowModel directly."""
    root = osp.join(str(tmp_path), 'experiments', 'unit')
    opt = {
        'name': 'unit',
        'model_type': 'SRFlowModel',
        'scale': SCALE,
        'num_gpu': num_gpu,
        'is_train': is_train,
        'dist': False,
        'rank': 0,
        'world_size': 1,
        'manual_seed': 0,
        'network_g': deepcopy(TINY_NET),
        'path': {
            'pretrain_network_g': None,
            'strict_load_g': True,
            'resume_state': None,
            'experiments_root': root,
            'models': osp.join(root, 'models'),
            'training_states': osp.join(root, 'training_states'),
            'log': root,
            'visualization': osp.join(root, 'visualization'),
            'results_root': osp.join(str(tmp_path), 'results', 'unit'),
        },
        'train': {
            'total_iter': 10,
            'train_rrdb_delay': 0,
            'optim_g': {'type': 'Adam', 'lr': 1e-3, 'betas': [0.9, 0.999]},
            'scheduler': {'type': 'MultiStepLR', 'milestones': [5], 'gamma': 0.5},
        },
        'val': {
            'val_freq': 5,
            'save_img': False,
            'heats': [0.0, 0.8],
            'n_sample': 2,
            'metrics': {
                'psnr': {'type': 'calculate_psnr', 'crop_border': 0, 'test_y_channel': False},
                'lr_psnr': {'type': 'calculate_lr_psnr', 'crop_border': 0},
            },
        },
    }
    for section, update in (('train', train), ('val', val), ('path', path)):
        if update:
            opt[section].update(update)
    opt.update(extra)
    for folder in ('models', 'training_states', 'visualization'):
        os.makedirs(opt['path'][folder], exist_ok=True)
    return opt


def smooth_images(n, size, seed=0):
    """n smooth random colour images (uint8 BGR, size x size): learnable, unlike white noise."""
    rng = np.random.default_rng(seed)
    images = []
    for _ in range(n):
        small = rng.integers(0, 256, (4, 4, 3)).astype(np.float32)
        images.append(np.clip(cv2.resize(small, (size, size), interpolation=cv2.INTER_CUBIC), 0, 255).astype(np.uint8))
    return images


def write_pairs(root, n, gt_size=32, seed=0):
    """GT / LR (x4 bicubic) image folders for a PairedImageDataset with the disk backend."""
    gt_dir, lq_dir = osp.join(str(root), 'gt'), osp.join(str(root), 'lq')
    os.makedirs(gt_dir, exist_ok=True)
    os.makedirs(lq_dir, exist_ok=True)
    for i, img in enumerate(smooth_images(n, gt_size, seed)):
        cv2.imwrite(osp.join(gt_dir, f'img{i:03d}.png'), img)
        lq = cv2.resize(img, (gt_size // SCALE, gt_size // SCALE), interpolation=cv2.INTER_AREA)
        cv2.imwrite(osp.join(lq_dir, f'img{i:03d}.png'), lq)
    return gt_dir, lq_dir


def dump_yml(tmp_path, name, opt):
    """Writes ``opt`` to <tmp_path>/<name>.yml and returns the path."""
    yml = osp.join(str(tmp_path), f'{name}.yml')
    with open(yml, 'w') as f:
        yaml.safe_dump(opt, f, sort_keys=False)
    return yml


def write_train_yml(tmp_path, name='tiny', total_iter=6, save_every=2, val_freq=100, num_gpu=0, **train_extra):
    """An option file training the tiny SRFlowNet on 4 images of 32x32 (batch 2), validating on 1 image, on the CPU
    (``num_gpu`` 0) or CUDA (1)."""
    gt_dir, lq_dir = write_pairs(osp.join(str(tmp_path), 'data_train'), 4, 32, seed=1)
    val_gt, val_lq = write_pairs(osp.join(str(tmp_path), 'data_val'), 1, 32, seed=2)
    opt = {
        'name': name,
        'model_type': 'SRFlowModel',
        'scale': SCALE,
        'num_gpu': num_gpu,
        'manual_seed': 0,
        'datasets': {
            'train': dict(name='tiny_train', type='PairedImageDataset', dataroot_gt=gt_dir, dataroot_lq=lq_dir,
                          io_backend={'type': 'disk'}, gt_size=32, use_hflip=True, use_rot=False,
                          num_worker_per_gpu=0, batch_size_per_gpu=2, dataset_enlarge_ratio=1),
            'val': dict(name='tiny_val', type='PairedImageDataset', dataroot_gt=val_gt, dataroot_lq=val_lq,
                        io_backend={'type': 'disk'}),
        },
        'network_g': deepcopy(TINY_NET),
        'path': {'pretrain_network_g': None, 'strict_load_g': True, 'resume_state': None},
        'train': {
            'total_iter': total_iter,
            'train_rrdb_delay': 0,
            'optim_g': {'type': 'Adam', 'lr': 1e-3, 'betas': [0.9, 0.999]},
            'scheduler': {'type': 'MultiStepLR', 'milestones': [total_iter // 2], 'gamma': 0.5},
            **train_extra,
        },
        'val': {
            'val_freq': val_freq,
            'save_img': True,
            'heats': [0.0, 0.8],
            'n_sample': 2,
            'metrics': {'psnr': {'type': 'calculate_psnr', 'crop_border': 0}},
        },
        'logger': {'print_freq': 1, 'save_checkpoint_freq': save_every, 'use_tb_logger': False},
        'dist_params': {'backend': 'nccl', 'port': 29500},
    }
    return dump_yml(tmp_path, name, opt)


def subprocess_env():
    env = dict(os.environ)
    env['PYTHONPATH'] = REPO + (os.pathsep + env['PYTHONPATH'] if env.get('PYTHONPATH') else '')
    env['OMP_NUM_THREADS'] = '1'
    return env


class FakeTBLogger:
    """Records add_scalar calls like a SummaryWriter."""

    def __init__(self):
        self.scalars = {}

    def add_scalar(self, tag, value, step):
        self.scalars[tag] = (value, step)


def val_loader(n=2, lq_size=8, name='unitval', seed=3, with_gt=True):
    """A DataLoader of n random LR/GT pairs as BasicSR's PairedImageDataset yields them (batch 1)."""
    import torch
    from torch.utils.data import DataLoader, Dataset

    generator = torch.Generator().manual_seed(seed)
    items = []
    for i in range(n):
        item = {'lq': torch.rand(3, lq_size, lq_size, generator=generator), 'lq_path': f'/x/val{i}.png'}
        if with_gt:
            item['gt'] = torch.rand(3, lq_size * SCALE, lq_size * SCALE, generator=generator)
        items.append(item)

    class _Set(Dataset):
        opt = {'name': name}

        def __len__(self):
            return len(items)

        def __getitem__(self, index):
            return items[index]

    return DataLoader(_Set(), batch_size=1)


@contextlib.contextmanager
def gloo_process_group(rank, world_size, port):
    """This process as rank ``rank`` of a CPU (gloo) process group on localhost, one torch thread."""
    import torch.distributed as dist

    os.environ['MASTER_ADDR'] = '127.0.0.1'
    os.environ['MASTER_PORT'] = str(port)
    torch.set_num_threads(1)
    dist.init_process_group('gloo', rank=rank, world_size=world_size)
    try:
        import srflow_plugin  # noqa: F401
        yield
    finally:
        dist.destroy_process_group()


def ddp_actnorm_worker(rank, world_size, port, out_dir, batches):
    """One process of the two-process gloo test: builds SRFlowModel under DDP and trains one step with lr 0."""
    with gloo_process_group(rank, world_size, port):
        from srflow_plugin.models.srflow_model import SRFlowModel
        torch.manual_seed(100 + rank)  # different initial weights per rank; DDP broadcasts rank 0's
        opt = make_opt(osp.join(out_dir, f'rank{rank}'), dist=True, rank=rank, world_size=world_size,
                       train={'optim_g': {'type': 'Adam', 'lr': 0.0}})
        model = SRFlowModel(opt)
        state = model.get_bare_model(model.net_g).state_dict()
        torch.save({k: v.clone() for k, v in state.items()}, osp.join(out_dir, f'before{rank}.pt'))
        model.feed_data(batches[rank])
        model.optimize_parameters(1)
        state = model.get_bare_model(model.net_g).state_dict()
        torch.save({k: v.clone() for k, v in state.items()}, osp.join(out_dir, f'after{rank}.pt'))


def write_test_yml(tmp_path, checkpoint, name='tiny_test'):
    """An option file testing a checkpoint of the tiny network on one image, temperatures 0 and 0.8, 2 samples."""
    val_gt, val_lq = write_pairs(osp.join(str(tmp_path), 'data_test'), 2, 32, seed=4)
    opt = {
        'name': name,
        'model_type': 'SRFlowModel',
        'scale': SCALE,
        'num_gpu': 0,
        'manual_seed': 0,
        'datasets': {
            'test_1': dict(name='tinyset', type='PairedImageDataset', dataroot_gt=val_gt, dataroot_lq=val_lq,
                           io_backend={'type': 'disk'}),
        },
        'network_g': deepcopy(TINY_NET),
        'path': {'pretrain_network_g': str(checkpoint), 'strict_load_g': True, 'param_key_g': 'params'},
        'val': {
            'save_img': True,
            'suffix': None,
            'heats': [0.0, 0.8],
            'n_sample': 2,
            'metrics': {'psnr': {'type': 'calculate_psnr', 'crop_border': 0},
                        'lr_psnr': {'type': 'calculate_lr_psnr', 'crop_border': 0}},
        },
    }
    return dump_yml(tmp_path, name, opt)


def ddp_train_worker(rank, world_size, port, out_dir, batches, train):
    """One process of a two-process gloo run: a few real training steps of SRFlowModel under DDP."""
    with gloo_process_group(rank, world_size, port):
        from srflow_plugin.models.srflow_model import SRFlowModel
        model = SRFlowModel(make_opt(osp.join(out_dir, f'rank{rank}'), dist=True, rank=rank, world_size=world_size,
                                     train=train))
        state = model.get_bare_model(model.net_g).state_dict()
        torch.save({k: v.clone() for k, v in state.items()}, osp.join(out_dir, f'before{rank}.pt'))
        for it, data in enumerate(batches[rank], start=1):
            model.feed_data(data)
            model.optimize_parameters(it)
        state = model.get_bare_model(model.net_g).state_dict()
        torch.save({k: v.clone() for k, v in state.items()}, osp.join(out_dir, f'after{rank}.pt'))


def smooth_batch(n, size, seed):
    """(gt, lq): n smooth images of size x size in [0, 1] and their x4 area-downscaled LR."""
    gt = torch.from_numpy(np.stack(smooth_images(n, size, seed))).permute(0, 3, 1, 2).float() / 255
    return gt, torch.nn.functional.avg_pool2d(gt, SCALE)


@functools.lru_cache(maxsize=None)
def briefly_trained_net(steps=40, seed=0):
    """A small x4 SRFlowNet after ``steps`` Adam steps (NLL, dequantised GT) on smooth 32x32 images: trained,
    not random, weights for agreement checks between computation paths. Returns (net in train mode, (gt, lq))
    with a held-out batch. Cached: a test that changes it puts it back."""
    from srflow_plugin.archs import SRFlowNet
    torch.manual_seed(seed)
    net = SRFlowNet(scale=SCALE, num_feat=16, num_block=2, num_grow_ch=8, tap_blocks=(0, 1), flow_steps=3,
                    plain_steps=1, hidden_channels=16).train()
    gt, lq = smooth_batch(8, 32, seed)
    optimizer = torch.optim.Adam(net.parameters(), lr=2e-3)
    for _ in range(steps):
        optimizer.zero_grad(set_to_none=True)
        net.encode(gt + (torch.rand_like(gt) - 0.5) / 256, lq)[1].mean().backward()
        optimizer.step()
    net.zero_grad(set_to_none=True)
    return net, smooth_batch(4, 32, seed + 1)
