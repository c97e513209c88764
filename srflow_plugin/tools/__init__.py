"""The console commands (each ``main(argv)`` for Python, ``cli`` for its entry point in setup.py):

- ``sample``: ``srflow-sample``, samples at several temperatures, tiling (``tiling``), picture grids (``grid``).
- ``latent``: ``srflow-latent``, encode / transfer / sweep.
- ``measure``: ``srflow-measure``, PSNR, SSIM, LPIPS, LR-PSNR and diversity of a folder of samples.
- ``prepare_data``: ``srflow-prepare-data``, GT sub-images, bicubic LR images and LMDBs.
- ``convert``: ``srflow-convert``, the SRFlow release's checkpoints as BasicSR checkpoints.
- ``complexity``: ``srflow-complexity``, parameters, MACs per output pixel and receptive field of networks.
- ``compare``: ``srflow-compare``, the comparison table, picture grid and temperature plot of several models.

``command`` holds what every command shares (``console_command``: exit status and one-line errors; the help
formatter); ``flow_vs_gan`` runs the flow-versus-GAN study (``python scripts/flow_vs_gan.py``). ``srflow-train`` and
``srflow-test`` are ``srflow_plugin.train`` and ``srflow_plugin.test``.

Checkpoints (``load_srflow`` / ``save_srflow``), images and sample naming live in ``srflow_plugin.utils``.
"""
from srflow_plugin.utils.checkpoint import load_srflow, save_srflow

__all__ = ['load_srflow', 'save_srflow']
