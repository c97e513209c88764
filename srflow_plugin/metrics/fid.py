"""FID (Heusel et al. 2017) between a set of SR outputs and the set of their GT images, through BasicSR's own code.

BasicSR's ``basicsr/metrics/fid.py`` gives the Fréchet distance (``calculate_fid``) and the patched Inception-v3 of
pytorch-fid (``InceptionV3``, pool features, 2048 dimensions), whose weights it reads from
``experiments/pretrained_models/pt_inception-2015-12-05-6726825d.pth`` (relative to the working directory) or else
downloads into torch hub's checkpoint folder. This module looks at both places before building the network, so
an offline machine gets an error naming the file instead of a failed download.

FID is a dataset-level metric: :class:`FID` accumulates features image by image (``update``) and reports once
(``compute``). The GT set counts each distinct GT image once, however many SR samples are measured against it.
"""
import hashlib
import os

import numpy as np
import torch

from basicsr.metrics.fid import calculate_fid
from basicsr.utils import img2tensor

__all__ = ['FID', 'inception_weights_path', 'get_inception', 'frechet_distance', 'feature_statistics']

INCEPTION_FILE = 'pt_inception-2015-12-05-6726825d.pth'
_INCEPTIONS = {}  # device -> feature function, built once
_GT_FEATURES = {}  # (feature network, crop, GT digest) -> features: a GT image is seen once per network


def inception_weights_path():
    """The Inception weights BasicSR would load: its local file if present, else torch hub's cached download.

    Returns:
        str: An existing file.

    Raises:
        FileNotFoundError: neither exists; names both places (BasicSR would try to download here).
    """
    from basicsr.archs.inception import LOCAL_FID_WEIGHTS
    hub_file = os.path.join(torch.hub.get_dir(), 'checkpoints', INCEPTION_FILE)
    for path in (LOCAL_FID_WEIGHTS, hub_file):
        if os.path.isfile(path):
            return path
    raise FileNotFoundError(
        f'FID needs the Inception-v3 weights of pytorch-fid ({INCEPTION_FILE}) and there is no file at '
        f'{os.path.abspath(LOCAL_FID_WEIGHTS)} (BasicSR\'s local path, relative to the working directory) nor at '
        f'{hub_file} (torch hub\'s cache). Download {INCEPTION_FILE} from the pytorch-fid releases on a machine with '
        f'internet and place it at either path.')


def get_inception(device=None):
    """BasicSR's FID Inception-v3 as a feature function: RGB (N, 3, H, W) in [0, 1] -> (N, 2048), built once per
    device (after :func:`inception_weights_path` found the weights)."""
    device = torch.device(device or ('cuda' if torch.cuda.is_available() else 'cpu'))
    if str(device) not in _INCEPTIONS:
        inception_weights_path()
        from basicsr.archs.inception import InceptionV3
        net = InceptionV3([3], resize_input=True, normalize_input=True).eval().to(device)

        @torch.no_grad()
        def features(x):
            return net(x.to(device))[0].flatten(1)

        _INCEPTIONS[str(device)] = features
    return _INCEPTIONS[str(device)]


def feature_statistics(features):
    """(mean, covariance) of features (N, D), N >= 2, in float64 (the unbiased covariance, as pytorch-fid)."""
    features = np.asarray(features, dtype=np.float64)
    if features.ndim != 2 or features.shape[0] < 2:
        raise ValueError(f'FID needs the features of at least 2 images per set, got shape {features.shape}')
    return features.mean(0), np.cov(features, rowvar=False)


def frechet_distance(features1, features2):
    """Fréchet distance between Gaussians fitted to two feature sets (BasicSR's ``calculate_fid``)."""
    mu1, sigma1 = feature_statistics(features1)
    mu2, sigma2 = feature_statistics(features2)
    return float(calculate_fid(mu1, np.atleast_2d(sigma1), mu2, np.atleast_2d(sigma2)))


def _to_rgb_tensor(img):
    """HWC BGR uint8 (or float in [0, 255]) -> (1, 3, H, W) RGB in [0, 1]."""
    if img.ndim == 2:
        img = np.repeat(img[:, :, None], 3, axis=2)
    return img2tensor(img.astype(np.float32) / 255., bgr2rgb=True, float32=True).unsqueeze(0)


class FID:
    """FID between all SR images given to :meth:`update` and their (distinct) GT images.

    Args:
        crop_border (int): Pixels cropped from each edge before measuring. Default: 0.
        feature_net (callable | None): RGB (N, 3, H, W) in [0, 1] -> features (N, D). Default: BasicSR's FID
            Inception-v3 (pool features), see :func:`get_inception`.
        device (str | None): Device of the Inception network. Default: CUDA when available, else CPU.
    """

    def __init__(self, crop_border=0, feature_net=None, device=None):
        self.crop_border = int(crop_border)
        self.feature_net = feature_net if feature_net is not None else get_inception(device)
        self.sr_features, self.gt_features = [], []
        self._gt_seen = set()

    def _features(self, img):
        if self.crop_border:
            c = self.crop_border
            img = img[c:-c, c:-c, ...]
        with torch.no_grad():
            return self.feature_net(_to_rgb_tensor(img)).detach().double().cpu().numpy().reshape(-1)

    def update(self, sr, gt, lq=None):
        """Adds one SR image (HWC BGR uint8) and its GT (same shape; counted once however often it comes)."""
        if gt is None:
            raise ValueError('FID needs the GT image of every SR image')
        if sr.shape != gt.shape:
            raise ValueError(f'FID: SR shape {sr.shape} differs from GT shape {gt.shape}')
        self.sr_features.append(self._features(sr))
        key = hashlib.sha1(np.ascontiguousarray(gt).tobytes()).hexdigest() + str(gt.shape)
        if key not in self._gt_seen:
            self._gt_seen.add(key)
            # GT images come again for every temperature and model: their features are computed once per network
            cache_key = (self.feature_net, self.crop_border, key)  # the key holds the network: its id stays unique
            if cache_key not in _GT_FEATURES:
                _GT_FEATURES[cache_key] = self._features(gt)
            self.gt_features.append(_GT_FEATURES[cache_key])

    def compute(self):
        """The FID of everything added so far."""
        return frechet_distance(np.stack(self.sr_features) if self.sr_features else np.zeros((0, 0)),
                                np.stack(self.gt_features) if self.gt_features else np.zeros((0, 0)))
