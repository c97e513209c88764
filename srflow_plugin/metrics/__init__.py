"""SRFlow's metrics. Importing this package registers ``calculate_lr_psnr`` and ``calculate_lpips`` in
BasicSR's METRIC_REGISTRY, so validation options can name them as ``type:``. ``FID`` is dataset-level: it
accumulates over images (``update``) and reports once (``compute``)."""
from .diversity import diversity_score
from .fid import FID, frechet_distance, inception_weights_path
from .lpips_metric import backbone_weights_path, calculate_lpips, get_lpips_model, lpips_distance
from .lr_psnr import bicubic_downscale, bicubic_upscale_matlab, calculate_lr_psnr

__all__ = [
    'calculate_lr_psnr', 'bicubic_downscale', 'bicubic_upscale_matlab', 'calculate_lpips', 'lpips_distance',
    'get_lpips_model', 'backbone_weights_path', 'diversity_score', 'FID', 'frechet_distance', 'inception_weights_path'
]
