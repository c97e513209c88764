"""Sampling super-resolutions of one LR image with a trained flow: every temperature, every sample, bounded memory.

Sample ``k`` at temperature ``T`` decodes ``T * z_k``, ``z_k`` being the ``k``-th unit-variance draw of the image's
generator (:mod:`srflow_plugin.utils.sampling`, as validation draws them), so the same seed gives the same picture in
``srflow-sample``, validation and here. Outputs are decoded a bounded batch at a time (:func:`iter_samples`), whole or
tile by tile (:mod:`srflow_plugin.inference.tiling`), optionally repaired where pixels are bad
(:mod:`srflow_plugin.inference.safe_sampling`). :func:`sample_grid` lays one image's samples out as a labelled grid.
"""
from os import path as osp
from typing import Dict, Iterator, Optional, Sequence, Tuple

import numpy as np
import torch

from srflow_plugin.inference.grid import bicubic_upscale, make_grid, nearest_upscale
from srflow_plugin.inference.safe_sampling import Repair, decode_safely
from srflow_plugin.inference.tiling import decode_tiled
from srflow_plugin.utils.image import IMG_EXTENSIONS, crop_gt_to_sr, read_image
from srflow_plugin.utils.sampling import draw_noise, sample_keys, scaled

__all__ = ['MIN_LR_SIZE', 'sample_batch_size', 'iter_samples', 'sample_image', 'mode_image', 'sample_grid', 'find_gt']

MIN_LR_SIZE = 2  # the flow's first squeeze needs 2x2 LR pixels

# outputs decoded together (their latents and float images in memory at once): at most this many bytes of them, and
# at least one output; a 40x40 LR image at x4 gives batches of 64, a 1500x1500 one single outputs
SAMPLE_BATCH_BYTES = 256 * 2**20
MAX_SAMPLE_BATCH = 64

SampleKey = Tuple[float, int]  # (temperature, sample)


def sample_batch_size(lq_shape: Sequence[int], scale: int) -> int:
    """How many outputs :func:`iter_samples` decodes at once for an LR image of shape [1, C, h, w]."""
    out_bytes = 2 * 4 * lq_shape[-3] * lq_shape[-2] * lq_shape[-1] * scale**2  # its latents and its float image
    return max(1, min(MAX_SAMPLE_BATCH, SAMPLE_BATCH_BYTES // out_bytes))


@torch.no_grad()
def iter_samples(net: torch.nn.Module, lq: torch.Tensor, temperatures: Sequence[float], num_samples: int,
                 generator: Optional[torch.Generator], tile: Optional[int] = None, tile_overlap: int = 0,
                 safe: bool = False,
                 repairs: Optional[Dict[SampleKey, Repair]] = None) -> Iterator[Tuple[SampleKey, torch.Tensor]]:
    """Yields ``((temperature, sample), HR image)`` for every output of :func:`sample_image`, a bounded batch at a
    time (:func:`sample_batch_size`): memory does not grow with ``num_samples``. Sample ``k`` is the ``k``-th draw
    of ``generator`` at every temperature, as in :func:`sample_image`; outputs come sample by sample. ``safe`` and
    ``repairs``: as :func:`sample_image`."""
    device = next(net.parameters()).device
    keys = sample_keys(temperatures, num_samples)
    per_batch = sample_batch_size(lq.shape, net.scale)
    cond = None if tile else net.condition(lq.to(device))
    ordered = sorted(keys, key=lambda key: (key[1], key[0]))  # sample by sample
    noise = {}  # sample -> its unit latents, while a batch needs them
    for start in range(0, len(ordered), per_batch):
        batch = ordered[start:start + per_batch]
        for _, s in batch:
            if s not in noise:  # draws come in order: sample s is the s-th draw of the generator
                noise[s] = draw_noise(net, *lq.shape[-2:], 1, generator)[0]
        latents = [scaled(noise[s], t) for t, s in batch]
        if tile:
            decode = lambda lat: decode_tiled(net, lq, [lat], tile, tile_overlap)[0]  # noqa: E731
            outputs = decode_tiled(net, lq, latents, tile, tile_overlap)
        else:
            decode = lambda lat: net.decode(cond=cond, latents=[z.to(device) for z in lat]).cpu()  # noqa: E731
            outputs = [decode(lat) for lat in latents]
        if safe:
            for index, (key, lat) in enumerate(zip(batch, latents)):
                outputs[index], repair = decode_safely(decode, lat, outputs[index])
                if repair.pixels and repairs is not None:
                    repairs[key] = repair
        done = max(s for _, s in batch)
        noise = {s: z for s, z in noise.items() if s >= done}
        yield from zip(batch, outputs)


@torch.no_grad()
def sample_image(net: torch.nn.Module, lq: torch.Tensor, temperatures: Sequence[float], num_samples: int,
                 generator: Optional[torch.Generator], tile: Optional[int] = None, tile_overlap: int = 0,
                 safe: bool = False,
                 repairs: Optional[Dict[SampleKey, Repair]] = None) -> Dict[SampleKey, torch.Tensor]:
    """Draws ``num_samples`` super-resolutions of one LR image at every temperature > 0, and one at temperature 0
    (all its latents are zero, so every sample would be the same picture).

    Sample ``k`` decodes ``T * z_k`` at temperature ``T``, where ``z_k`` is the ``k``-th unit-variance draw of
    ``generator`` (:mod:`srflow_plugin.utils.sampling`, as validation draws them): the samples of all temperatures
    share their noise, and a sample does not depend on which other temperatures are asked for. The latents are
    drawn for the whole image (so tiled and untiled sampling give the same pictures when the overlap covers the
    receptive field); the LR image is encoded once (once per tile and batch when tiled) and shared by all samples.
    ``srflow-sample`` streams the same outputs to disk with :func:`iter_samples` instead of keeping them all.

    Args:
        net (SRFlowNet): The network.
        lq (Tensor): One LR image [1, C, h, w] in [0, 1] (any device).
        temperatures (Sequence[float]): Standard deviations of the latents.
        num_samples (int): Samples per temperature.
        generator (torch.Generator): A CPU generator (:func:`~srflow_plugin.utils.sampling.image_generator`).
        tile (int | None): Tile core size in LR pixels (even) for tiled decoding; None decodes the whole image.
        tile_overlap (int): Context around each tile in LR pixels (even).
        safe (bool): Repair samples with non-finite or far out-of-range pixels (:mod:`srflow_plugin.inference.
            safe_sampling`); the others are returned as drawn.
        repairs (dict | None): Receives (temperature, sample) ->
            :class:`~srflow_plugin.inference.safe_sampling.Repair` for every sample that was repaired.

    Returns:
        dict[(float, int), Tensor]: (temperature, sample) -> HR image [1, C, H, W] on the CPU (not clamped);
        temperature 0 has the one key (0.0, 0), in the order of :func:`~srflow_plugin.utils.sampling.sample_keys`.
    """
    outputs = dict(iter_samples(net, lq, temperatures, num_samples, generator, tile, tile_overlap, safe, repairs))
    return {key: outputs[key] for key in sample_keys(temperatures, num_samples)}


def mode_image(net: torch.nn.Module,
               lq: torch.Tensor,
               tile: Optional[int] = None,
               tile_overlap: int = 0) -> torch.Tensor:
    """The tau = 0 image (all latents zero)."""
    return sample_image(net, lq, [0.0], 1, None, tile, tile_overlap)[(0.0, 0)]


def sample_grid(lq_img: np.ndarray,
                samples: Dict[SampleKey, np.ndarray],
                mode: np.ndarray,
                scale: int,
                gt_img: Optional[np.ndarray] = None) -> np.ndarray:
    """The picture grid of one image: a reference row [LR (nearest), bicubic, tau = 0, GT] and one row per
    temperature > 0 with its samples.

    Args:
        lq_img (ndarray): LR image, uint8 BGR.
        samples (dict[(float, int), ndarray]): (temperature, sample) -> uint8 BGR SR image.
        mode (ndarray): The tau = 0 image, uint8 BGR.
        scale (int): SR scale.
        gt_img (ndarray | None): GT image, uint8 BGR.

    Returns:
        ndarray: the grid (see ``srflow_plugin.inference.grid``).
    """
    reference = [('LR (nearest)', nearest_upscale(lq_img, scale)), ('bicubic', bicubic_upscale(lq_img, scale)),
                 ('SRFlow tau=0', mode)]
    if gt_img is not None:
        reference.append(('GT', gt_img))
    rows = [reference]
    for t in sorted({t for t, _ in samples if t > 0}):
        rows.append([(f'tau={t:g} #{s}', samples[(tt, s)]) for tt, s in sorted(samples) if tt == t])
    return make_grid(rows)


def find_gt(gt: str, name: str, sr_shape: Sequence[int], scale: int) -> np.ndarray:
    """The GT image of ``name`` from a file or folder, cropped to the SR size when larger by < scale."""
    if osp.isfile(gt):
        path = gt
    else:
        candidates = [osp.join(gt, name + ext) for ext in IMG_EXTENSIONS + tuple(e.upper() for e in IMG_EXTENSIONS)]
        found = [p for p in candidates if osp.isfile(p)]
        if not found:
            raise FileNotFoundError(f'No GT image for {name} in {gt} (looked for {name}.png, .jpg, ...).')
        path = found[0]
    return crop_gt_to_sr(read_image(path), sr_shape[:2], scale, f'GT {path}', 'the SR image')
