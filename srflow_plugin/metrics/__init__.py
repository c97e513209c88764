"""SRFlow's metrics. Importing this package registers ``calculate_lr_psnr`` and ``calculate_lpips`` in
BasicSR's METRIC_REGISTRY, so validation options can name them as ``type:``. ``FID`` and ``KID`` are
dataset-level: they accumulate Inception features over images (``update``) and report once (``compute``)."""
from .diversity import diversity_score
from .fid import FID, InceptionFeatures, frechet_distance, inception_weights_path
from .kid import KID, kernel_distance
from .lpips_metric import backbone_weights_path, calculate_lpips, get_lpips_model, lpips_distance
from .lr_psnr import bicubic_downscale, bicubic_upscale_matlab, calculate_lr_psnr

__all__ = [
    'calculate_lr_psnr', 'bicubic_downscale', 'bicubic_upscale_matlab', 'calculate_lpips', 'lpips_distance',
    'get_lpips_model', 'backbone_weights_path', 'diversity_score', 'FID', 'frechet_distance', 'inception_weights_path',
    'InceptionFeatures', 'KID', 'kernel_distance'
]
