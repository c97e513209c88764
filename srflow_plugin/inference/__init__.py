"""Inference with a trained SRFlow: the library under ``srflow-sample`` and ``srflow-measure``, for Python use.

- ``loading``: :func:`~srflow_plugin.inference.loading.load_srflow`, a trained SRFlowNet from a self-contained
  checkpoint (or a training checkpoint and its option file), in eval mode.
- ``sampling``: :func:`~srflow_plugin.inference.sampling.sample_image` / ``iter_samples``, the samples of one LR image
  at several temperatures (seeded as validation, bounded memory), ``sample_grid``.
- ``tiling``: tiled decoding that equals whole-image decoding, receptive radius, the memory check.
- ``safe_sampling``: samples repaired where their pixels are non-finite or far out of range.
- ``lr_consistency``: MATLAB-bicubic downscaling as matrices and back-projection onto the LR image.
- ``measuring``: :func:`~srflow_plugin.inference.measuring.measure` / ``measure_image``, PSNR, SSIM, LPIPS,
  LR-PSNR, diversity, FID and KID of SR samples; CSV and markdown tables.
- ``grid``: labelled picture grids.

Nothing is imported here: import the module you need (``from srflow_plugin.inference.sampling import
sample_image``).
"""
