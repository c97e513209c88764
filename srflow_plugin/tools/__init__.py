"""Command-line tools around a trained SRFlowNet: sampling (with tiling and picture grids) and latent-space tools.

- ``srflow_plugin.tools.checkpoint``: ``load_srflow`` / ``save_srflow`` (a BasicSR checkpoint plus the network config).
- ``srflow_plugin.tools.sample``: the sampling CLI (``scripts/sample.py``).
- ``srflow_plugin.tools.tiling``: tiled decoding of large images with the latents of the whole image.
- ``srflow_plugin.tools.grid``: labelled picture grids.
- ``srflow_plugin.tools.latent``: encode / transfer / sweep (``scripts/latent_tools.py``).
"""
from srflow_plugin.utils.checkpoint import load_srflow, save_srflow

__all__ = ['load_srflow', 'save_srflow']
