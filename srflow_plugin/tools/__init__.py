"""The console commands (each ``main(argv)`` for Python, ``cli`` for its entry point in setup.py), thin argparse
programs over the library:

- ``sample``: ``srflow-sample``, samples at several temperatures, tiled, with picture grids
  (:mod:`srflow_plugin.inference.sampling`).
- ``latent``: ``srflow-latent``, encode / transfer / sweep.
- ``measure``: ``srflow-measure``, PSNR, SSIM, LPIPS, LR-PSNR and diversity of a folder of samples
  (:mod:`srflow_plugin.inference.measuring`).
- ``prepare_data``: ``srflow-prepare-data``, GT sub-images, bicubic LR images and LMDBs.
- ``convert``: ``srflow-convert``, the SRFlow release's checkpoints as BasicSR checkpoints.
- ``complexity``: ``srflow-complexity``, parameters, MACs per output pixel and receptive field of networks.
- ``compare``: ``srflow-compare``, the comparison table, picture grid and temperature plot of several models.

``command`` holds what every command shares (``console_command``: exit status and one-line errors; the help
formatter; ``--device``). ``srflow-train`` and ``srflow-test`` are ``srflow_plugin.train`` and
``srflow_plugin.test``; the studies (flow versus GAN, real world) are programs in ``scripts/``.

Loading a trained network, sampling, tiling, measuring and grids are :mod:`srflow_plugin.inference`; checkpoints,
images and sample naming live in :mod:`srflow_plugin.utils`.
"""
