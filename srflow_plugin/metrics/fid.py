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
from typing import Callable, List, Optional, Tuple, Union

import numpy as np
import torch
from basicsr.metrics.fid import calculate_fid
from basicsr.utils import img2tensor

__all__ = ['FID', 'InceptionFeatures', 'inception_weights_path', 'get_inception', 'frechet_distance',
           'frechet_distance_by_gram', 'frechet_distance_from_gram', 'feature_statistics']

INCEPTION_FILE = 'pt_inception-2015-12-05-6726825d.pth'
_INCEPTIONS = {}  # device -> feature function, built once
_GT_FEATURES = {}  # (feature network, crop, GT digest) -> features: a GT image is seen once per network


def inception_weights_path() -> str:
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


def get_inception(device: Union[str, torch.device, None] = None) -> Callable[[torch.Tensor], torch.Tensor]:
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


def feature_statistics(features: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """(mean, covariance) of features (N, D), N >= 2, in float64 (the unbiased covariance, as pytorch-fid)."""
    features = np.asarray(features, dtype=np.float64)
    if features.ndim != 2 or features.shape[0] < 2:
        raise ValueError(f'FID needs the features of at least 2 images per set, got shape {features.shape}')
    return features.mean(0), np.cov(features, rowvar=False)


def frechet_distance(features1: np.ndarray, features2: np.ndarray) -> float:
    """Fréchet distance between Gaussians fitted to two feature sets (BasicSR's ``calculate_fid``)."""
    mu1, sigma1 = feature_statistics(features1)
    mu2, sigma2 = feature_statistics(features2)
    return float(calculate_fid(mu1, np.atleast_2d(sigma1), mu2, np.atleast_2d(sigma2)))


def frechet_distance_from_gram(g_xx: np.ndarray,
                               g_yy: np.ndarray,
                               g_xy: np.ndarray,
                               x_index: Optional[np.ndarray] = None,
                               y_index: Optional[np.ndarray] = None) -> float:
    """The Fréchet distance of :func:`frechet_distance` from the Gram matrices of the features (dot products within
    X, within Y and between them), without a D x D matrix square root: cheap for many bootstrap resamples.

    With centred features A (n, D) and B (m, D), the covariances are A^T A / (n - 1) and B^T B / (m - 1); the
    non-zero eigenvalues of their product are the squared singular values of A B^T / sqrt((n - 1)(m - 1)), so
    trace(sqrtm(S1 S2)) is the sum of those singular values (an (n, n) eigenproblem). Means, traces and A B^T all
    follow from the Gram matrices. Equal to BasicSR's value up to rounding.

    Args:
        g_xx, g_yy, g_xy (ndarray): X X^T, Y Y^T and X Y^T.
        x_index, y_index (ndarray | None): The members of X and Y to use (repeats allowed); default all.
    """
    x_index = np.arange(len(g_xx)) if x_index is None else np.asarray(x_index)
    y_index = np.arange(len(g_yy)) if y_index is None else np.asarray(y_index)
    n, m = len(x_index), len(y_index)
    if n < 2 or m < 2:
        raise ValueError(f'FID needs the features of at least 2 images per set, got {n} and {m}')
    within_x, within_y = g_xx[np.ix_(x_index, x_index)], g_yy[np.ix_(y_index, y_index)]
    between = g_xy[np.ix_(x_index, y_index)]
    mean_term = within_x.mean() + within_y.mean() - 2 * between.mean()
    trace_x = (np.trace(within_x) - n * within_x.mean()) / (n - 1)
    trace_y = (np.trace(within_y) - m * within_y.mean()) / (m - 1)
    cross = between - between.mean(0, keepdims=True) - between.mean(1, keepdims=True) + between.mean()
    small = cross @ cross.T if n <= m else cross.T @ cross
    root_trace = np.sqrt(np.clip(np.linalg.eigvalsh(small / ((n - 1) * (m - 1))), 0, None)).sum()
    return float(mean_term + trace_x + trace_y - 2 * root_trace)


def frechet_distance_by_gram(features1: np.ndarray, features2: np.ndarray) -> float:
    """:func:`frechet_distance` computed by :func:`frechet_distance_from_gram`."""
    x, y = np.asarray(features1, dtype=np.float64), np.asarray(features2, dtype=np.float64)
    return frechet_distance_from_gram(x @ x.T, y @ y.T, x @ y.T)


def _to_rgb_tensor(img):
    """HWC BGR uint8 (or float in [0, 255]) -> (1, 3, H, W) RGB in [0, 1]."""
    if img.ndim == 2:
        img = np.repeat(img[:, :, None], 3, axis=2)
    return img2tensor(img.astype(np.float32) / 255., bgr2rgb=True, float32=True).unsqueeze(0)


class InceptionFeatures:
    """The features of all SR images given to :meth:`update` and of their (distinct) GT images: what FID and KID are
    computed from. Images are measured in batches of ``batch_size`` (of one shape), when a batch is full or the
    features are read; each SR feature remembers its GT image (``owners``), so that a bootstrap can resample images.

    Args:
        crop_border (int): Pixels cropped from each edge before measuring. Default: 0.
        feature_net (callable | None): RGB (N, 3, H, W) in [0, 1] -> features (N, D). Default: BasicSR's FID
            Inception-v3 (pool features), see :func:`get_inception`.
        device (str | torch.device | None): Device of the Inception network. Default: CUDA when available, else CPU.
        batch_size (int): Images per call of the feature network. Default: 16.
    """

    def __init__(self,
                 crop_border: int = 0,
                 feature_net: Optional[Callable[[torch.Tensor], torch.Tensor]] = None,
                 device: Union[str, torch.device, None] = None,
                 batch_size: int = 16):
        self.crop_border = int(crop_border)
        self.feature_net = feature_net if feature_net is not None else get_inception(device)
        self.batch_size = int(batch_size)
        self.owners = []  # per SR image: index of its GT image in gt_features
        self._sr, self._gt = [], []  # features measured so far
        self._sr_pending, self._gt_pending = [], []  # (tensor, None) / (tensor, cache key) waiting for a batch
        self._gt_index = {}  # GT key -> index

    def _tensor(self, img):
        if self.crop_border:
            c = self.crop_border
            img = img[c:-c, c:-c, ...]
        return _to_rgb_tensor(img)

    def _run(self, pending, out):
        if not pending:
            return
        with torch.no_grad():
            features = self.feature_net(torch.cat([t for t, _ in pending])).detach().double().cpu().numpy()
        for (_, key), feature in zip(pending, features.reshape(len(pending), -1)):
            if key is not None:
                _GT_FEATURES[key] = feature
            out.append(feature)
        pending.clear()

    def _queue(self, pending, out, tensor, key=None):
        if pending and pending[0][0].shape != tensor.shape:
            self._run(pending, out)
        pending.append((tensor, key))
        if len(pending) >= self.batch_size:
            self._run(pending, out)

    def update(self, sr: np.ndarray, gt: np.ndarray, lq: Optional[np.ndarray] = None) -> None:
        """Adds one SR image (HWC BGR uint8) and its GT (same shape; counted once however often it comes)."""
        if gt is None:
            raise ValueError(f'{type(self).__name__} needs the GT image of every SR image')
        if sr.shape != gt.shape:
            raise ValueError(f'{type(self).__name__}: SR shape {sr.shape} differs from GT shape {gt.shape}')
        key = hashlib.sha1(np.ascontiguousarray(gt).tobytes()).hexdigest() + str(gt.shape)
        if key not in self._gt_index:
            self._gt_index[key] = len(self._gt_index)
            # GT images come again for every temperature and model: their features are computed once per network
            cache_key = (self.feature_net, self.crop_border, key)  # the key holds the network: its id stays unique
            if cache_key in _GT_FEATURES:
                self._run(self._gt_pending, self._gt)  # keep the order of the GT features
                self._gt.append(_GT_FEATURES[cache_key])
            else:
                self._queue(self._gt_pending, self._gt, self._tensor(gt), cache_key)
        self.owners.append(self._gt_index[key])
        self._queue(self._sr_pending, self._sr, self._tensor(sr))

    @property
    def sr_features(self) -> List[np.ndarray]:
        """list[ndarray]: one feature vector per SR image, in the order given."""
        self._run(self._sr_pending, self._sr)
        return self._sr

    @property
    def gt_features(self) -> List[np.ndarray]:
        """list[ndarray]: one feature vector per distinct GT image, in the order first given."""
        self._run(self._gt_pending, self._gt)
        return self._gt

    def arrays(self) -> Tuple[np.ndarray, np.ndarray]:
        """(SR features (N, D), GT features (M, D)) as float64 arrays (empty (0, 0) arrays when none)."""
        return (np.stack(self.sr_features) if self.sr_features else np.zeros((0, 0)),
                np.stack(self.gt_features) if self.gt_features else np.zeros((0, 0)))


class FID(InceptionFeatures):
    """FID between all SR images given to :meth:`update` and their (distinct) GT images (arguments: see
    :class:`InceptionFeatures`)."""

    def compute(self) -> float:
        """The FID of everything added so far."""
        return frechet_distance(*self.arrays())
