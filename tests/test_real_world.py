"""RealSRFlowModel: the LR batch is BasicSR's Real-ESRGAN degradation of the GT, synthesised on the model's device."""
import os
import random
from os import path as osp

import cv2
import numpy as np
import pytest
import torch
from basicsr.data import build_dataset
from basicsr.models.realesrnet_model import RealESRNetModel
from basicsr.utils.registry import DATASET_REGISTRY, MODEL_REGISTRY

from srflow_plugin.data import RealESRGANCropDataset
from srflow_plugin.models import RealSRFlowModel
from srflow_plugin.models.realsrflow_model import ContiguousDiffJPEG
from srflow_plugin.options_schema import OptionError
from helpers.train import SCALE, TINY_NET, make_opt, smooth_images

KERNELS = ['iso', 'aniso', 'generalized_iso', 'generalized_aniso', 'plateau_iso', 'plateau_aniso']
GT_SIZE = 32


def dataset_options(root, n=3):
    """RealESRGANDataset options (Real-ESRGAN's x4plus kernel settings) over n small photographs-like images."""
    os.makedirs(root, exist_ok=True)
    names = []
    for i, img in enumerate(smooth_images(n, 64, seed=7)):
        names.append(f'img{i}.png')
        cv2.imwrite(osp.join(root, names[-1]), img)
    meta = osp.join(root, 'meta_info.txt')
    with open(meta, 'w') as f:
        f.write('\n'.join(names) + '\n')
    return dict(name='real', type='RealESRGANCropDataset', crop_pad_size=64, phase='train', dataroot_gt=root,
                meta_info=meta, io_backend={'type': 'disk'}, blur_kernel_size=21, kernel_list=KERNELS,
                kernel_prob=[0.45, 0.25, 0.12, 0.03, 0.12, 0.03], sinc_prob=0.1, blur_sigma=[0.2, 3],
                betag_range=[0.5, 4], betap_range=[1, 2], blur_kernel_size2=21, kernel_list2=KERNELS,
                kernel_prob2=[0.45, 0.25, 0.12, 0.03, 0.12, 0.03], sinc_prob2=0.1, blur_sigma2=[0.2, 1.5],
                betag_range2=[0.5, 4], betap_range2=[1, 2], final_sinc_prob=0.8, gt_size=GT_SIZE, use_hflip=True,
                use_rot=False)


def batch(dataset, indices):
    items = [dataset[i] for i in indices]
    return {key: torch.stack([item[key] for item in items]) for key in ('gt', 'kernel1', 'kernel2', 'sinc_kernel')}


def seed_all(seed):
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def real_opt(tmp_path, **extra):
    return make_opt(tmp_path, **{'model_type': 'RealSRFlowModel', 'gt_size': GT_SIZE, 'queue_size': 4, **extra})


def test_registered_beside_srflow_model():
    assert MODEL_REGISTRY.get('RealSRFlowModel') is RealSRFlowModel
    assert DATASET_REGISTRY.get('RealESRGANCropDataset') is RealESRGANCropDataset


def test_crop_dataset_gives_the_image_at_its_own_size_with_basicsr_kernels(tmp_path):
    """64 x 64 images, crop_pad_size 64: the GT is the image itself (or its mirror), not BasicSR's 400 x 400
    reflection-padded canvas; kernels as RealESRGANDataset draws them (21 x 21)."""
    seed_all(0)
    dataset = build_dataset(dataset_options(str(tmp_path / 'gt')))
    item = dataset[0]
    image = torch.from_numpy(cv2.imread(str(tmp_path / 'gt' / 'img0.png'))[..., ::-1].copy()).permute(2, 0, 1) / 255
    assert item['gt'].shape == (3, 64, 64)
    assert torch.allclose(item['gt'], image, atol=1e-6) or torch.allclose(item['gt'], image.flip(-1), atol=1e-6)
    assert item['kernel1'].shape == item['kernel2'].shape == item['sinc_kernel'].shape == (21, 21)
    with pytest.raises(ValueError, match="crop_pad_size' = 500"):
        build_dataset(dict(dataset_options(str(tmp_path / 'gt')), crop_pad_size=500))


def test_lr_equals_basicsr_realesrnet_pipeline_under_the_same_seed(tmp_path, monkeypatch):
    """Same seed, same GT and kernels: RealSRFlowModel's LR and GT crops are RealESRNetModel's, bit for bit, over
    three batches (the pair pool first fills, then shuffles and swaps)."""
    seed_all(0)
    dataset = build_dataset(dataset_options(str(tmp_path / 'gt')))
    batches = [batch(dataset, [i % 3, (i + 1) % 3]) for i in range(3)]

    ours = RealSRFlowModel(real_opt(tmp_path / 'ours'))
    # BasicSR's model as Real-ESRGAN configures it; it places its parts with .cuda(), a no-op on this CPU
    monkeypatch.setattr(torch.nn.Module, 'cuda', lambda self, *a, **k: self)
    monkeypatch.setattr(torch.Tensor, 'cuda', lambda self, *a, **k: self)
    reference_opt = real_opt(tmp_path / 'ref', model_type='RealESRNetModel')
    reference_opt['network_g'] = dict(type='RRDBNet', num_in_ch=3, num_out_ch=3, num_feat=4, num_block=1,
                                      num_grow_ch=4)
    reference_opt['train'] = {'pixel_opt': {'type': 'L1Loss'}, 'optim_g': {'type': 'Adam', 'lr': 1e-4},
                              'scheduler': {'type': 'MultiStepLR', 'milestones': [10], 'gamma': 0.5}}
    for key, value in ours.opt.items():  # the degradation keys, with the defaults RealSRFlowModel filled in
        reference_opt.setdefault(key, value)
    reference = RealESRNetModel(reference_opt)
    # on torch >= 2, BasicSR's filter2D cannot take DiffJPEG's permuted output: the same simulator, contiguous
    reference.jpeger = ContiguousDiffJPEG(differentiable=False)

    for step, data in enumerate(batches):
        seed_all(100 + step)
        ours.feed_data(dict(data))
        seed_all(100 + step)
        reference.feed_data(dict(data))
        assert ours.lq.shape == (2, 3, GT_SIZE // SCALE, GT_SIZE // SCALE)
        assert torch.equal(ours.lq, reference.lq)
        assert torch.equal(ours.gt, reference.gt)
    # a real degradation, not a resize: 8-bit values, different from the GT's area average
    assert torch.equal(ours.lq, (ours.lq * 255).round() / 255)
    assert (ours.lq - torch.nn.functional.avg_pool2d(ours.gt, SCALE)).abs().mean() > 0.01


def test_trains_on_synthesised_lr_and_validates_on_the_dataset_lr(tmp_path):
    seed_all(0)
    dataset = build_dataset(dataset_options(str(tmp_path / 'gt')))
    model = RealSRFlowModel(real_opt(tmp_path, queue_size=0, train={'guard': {'enabled': False}}))
    before = {k: v.clone() for k, v in model.net_g.state_dict().items()}
    for it in range(1, 3):
        model.feed_data(batch(dataset, [0, 1]))
        model.optimize_parameters(it)
        assert np.isfinite(model.log_dict['l_nll'])
    assert any(not torch.equal(before[k], v) for k, v in model.net_g.state_dict().items())
    lq = torch.rand(1, 3, 8, 8)
    model.is_train = False
    model.feed_data({'lq': lq})
    assert torch.equal(model.lq, lq)


@pytest.mark.parametrize('extra, message', [
    (dict(gt_size=None), "'gt_size'"),
    (dict(gt_size=36), r'multiple of 2 \* scale'),
    (dict(noise_range=[1]), "'noise_range'"),
])
def test_bad_degradation_options_are_named(tmp_path, extra, message):
    opt = real_opt(tmp_path)
    opt.update(extra)
    with pytest.raises(OptionError, match=message):
        RealSRFlowModel(opt)


def test_pair_pool_must_hold_whole_batches(tmp_path):
    seed_all(0)
    dataset = build_dataset(dataset_options(str(tmp_path / 'gt')))
    model = RealSRFlowModel(real_opt(tmp_path, queue_size=3))
    with pytest.raises(OptionError, match="'queue_size' = 3"):
        model.feed_data(batch(dataset, [0, 1]))


def test_network_of_option_files_builds(tmp_path):
    """The tiny network works with the real-world model (any flow SRFlowModel trains)."""
    assert RealSRFlowModel(real_opt(tmp_path)).opt['network_g']['type'] == TINY_NET['type']


def test_study_report_averages_the_seeds():
    from real_world_study import MODELS, SAFE_TEMPERATURES, report

    def seed_result(value):
        sr = {'psnr_t0': value, 'lpips': 0.5, 'lr_psnr': 30.0, 'diversity': 2.0}
        safe = {str(t): dict(samples=3, repaired=1, bad_before=10, nonfinite_before=4, bad_after=0, nonfinite_after=0,
                             lpips_repaired=0.4, lpips_untouched=0.3, lr_psnr_repaired=29.0, lr_psnr_untouched=31.0)
                for t in SAFE_TEMPERATURES}
        return {kind: {'seconds': 1.0, 'sr': {'bicubic': sr, 'degraded': sr}, 'nll': value / 10, 'safe': safe}
                for kind in MODELS}

    text = report({0: seed_result(20.0), 1: seed_result(22.0)})
    assert '### mean over seeds [0, 1]' in text and '### seed 1' in text
    assert '| bicubic | bicubic | 21.000 | 0.500 | 30.000 | 2.000 |' in text
    assert '| noise-conditioned | 2.100 | 1.000 |' in text
    safe_row = ('| degradation | 1.200 | 3.000 | 1.000 | 10.000 | 4.000 | 0.000 | 0.000 | 0.400 | 0.300 | 29.000 | '
                '31.000 |')
    assert safe_row in text
