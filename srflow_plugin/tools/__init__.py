"""The console commands (each ``main(argv)`` for Python, ``cli`` for its entry point in setup.py):

- ``sample``: ``srflow-sample``, samples at several temperatures, tiling (``tiling``), picture grids (``grid``).
- ``latent``: ``srflow-latent``, encode / transfer / sweep.
- ``measure``: ``srflow-measure``, PSNR, SSIM, LPIPS, LR-PSNR and diversity of a folder of samples.
- ``prepare_data``: ``srflow-prepare-data``, GT sub-images, bicubic LR images and LMDBs.
- ``convert``: ``srflow-convert``, the SRFlow release's checkpoints as BasicSR checkpoints.

Checkpoints (``load_srflow`` / ``save_srflow``), images and sample naming live in ``srflow_plugin.utils``.
"""
from srflow_plugin.utils.checkpoint import load_srflow, save_srflow

__all__ = ['load_srflow', 'save_srflow']
