"""Tiled decoding: super-resolve a large LR image one tile at a time, with the latents of the whole image.

Why it matches untiled decoding. The latents are drawn once for the whole image (``SRFlowNet.draw_latents``, as
``SRFlowNet.decode`` draws them), and every tile gets the exact crop of every
latent level. Each output pixel depends only on LR pixels and latents within the network's receptive radius
(``receptive_radius``); a tile that sees ``overlap >= radius`` LR pixels of context around its core therefore
computes its core exactly as the whole image would, and only cores are stitched. Latent levels run at 2^k times
the LR grid (k = log2(scale) - 1 down to -1, the coarsest level being LR / 2), so tile origins are kept at even
LR pixels: ``tile`` and ``overlap`` must be even, and every latent crop is then whole cells.

Memory. The network only ever sees one tile's input, at most ``(tile + 2 * overlap)`` LR pixels a side; the
condition of one tile is computed once and shared by all samples. Full-size latents and outputs stay on the CPU.
"""
import math
from dataclasses import dataclass
from typing import Callable, List, Optional, Sequence, Union

import torch

__all__ = ['Tile', 'tile_boxes', 'decode_tiled', 'receptive_radius', 'needed_overlap',
           'measure_receptive_radius', 'condition_bytes_per_pixel', 'available_memory', 'check_memory']


@dataclass
class Tile:
    """One tile in LR pixels: ``core`` is stitched into the output, ``context`` is what the network sees.
    Both are (y0, y1, x0, x1), end exclusive."""
    core: tuple
    context: tuple


def _check_even(name, value, minimum):
    if value < minimum or value % 2:
        raise ValueError(f'{name} must be an even number of LR pixels >= {minimum}, got {value}')


def tile_boxes(lq_h: int, lq_w: int, tile: int, overlap: int) -> List[Tile]:
    """Splits an LR image of lq_h x lq_w into cores of ``tile`` x ``tile`` (smaller at the bottom/right), each
    with up to ``overlap`` pixels of context on every side (clipped at the image border). Context origins are
    even; a context thinner than 2 pixels (a 1-pixel last core at ``overlap`` 0) is widened backwards to the even
    origin 2 or 3 pixels before its end.

    Args:
        lq_h, lq_w (int): LR size.
        tile (int): Core size in LR pixels (even).
        overlap (int): Context on each side in LR pixels (even).

    Returns:
        list[Tile]: row-major.
    """
    _check_even('tile', tile, 2)
    _check_even('tile_overlap', overlap, 0)

    def span(start, end, size):
        lo, hi = max(0, start - overlap), min(size, end + overlap)
        if hi - lo < 2:  # the network needs 2 pixels: step back to the even origin 2 or 3 pixels before hi
            lo = max(0, (hi - 2) // 2 * 2)
        return lo, hi

    tiles = []
    for y0 in range(0, lq_h, tile):
        y1 = min(y0 + tile, lq_h)
        for x0 in range(0, lq_w, tile):
            x1 = min(x0 + tile, lq_w)
            tiles.append(Tile((y0, y1, x0, x1), span(y0, y1, lq_h) + span(x0, x1, lq_w)))
    return tiles


def _latent_crop(latent, box, padded_size, padded_box_size):
    """The cells of ``latent`` (of the whole padded LR image) under the LR box (y0, x0) + padded_box_size."""
    (y0, x0), (ph, pw) = box, padded_box_size
    lh, lw = latent.shape[-2:]
    ys = [v * lh for v in (y0, y0 + ph)]
    xs = [v * lw for v in (x0, x0 + pw)]
    if any(v % padded_size[0] for v in ys) or any(v % padded_size[1] for v in xs):
        raise ValueError(f'tile at LR ({y0}, {x0}) of padded size {padded_box_size} does not fall on whole cells of '
                         f'a latent of shape {tuple(latent.shape)} (LR padded to {padded_size}); tiles must start '
                         'at even LR pixels')
    ys = [v // padded_size[0] for v in ys]
    xs = [v // padded_size[1] for v in xs]
    return latent[..., ys[0]:ys[1], xs[0]:xs[1]]


@torch.no_grad()
def decode_tiled(net: torch.nn.Module,
                 lq: torch.Tensor,
                 latents_list: Sequence[Sequence[torch.Tensor]],
                 tile: int,
                 overlap: int,
                 progress: Optional[Callable[[], None]] = None) -> List[torch.Tensor]:
    """Decodes the latents of the whole image tile by tile and stitches the tiles' cores.

    Args:
        net (SRFlowNet): The network (its device is used for every tile).
        lq (Tensor): LR images [B, C, h, w] (any device; tiles are moved to the network's device).
        latents_list (list[list[Tensor]]): One latent list per wanted output, each for the whole image (as
            ``net.draw_latents`` or ``net.encode`` gives them).
        tile (int): Core size in LR pixels (even).
        overlap (int): Context on each side in LR pixels (even); exact results need ``overlap >=
            receptive_radius(net)`` (smaller values trade seams for speed).
        progress (callable): Called with no argument after each tile.

    Returns:
        list[Tensor]: One HR image [B, C, scale*h, scale*w] per latent list, on the CPU (not clamped).
    """
    device = next(net.parameters()).device
    lq_h, lq_w = lq.shape[-2:]
    scale = net.scale
    padded = net.padded_lq_size(lq_h, lq_w)
    shapes = net.latent_shapes(lq_h, lq_w)
    for latents in latents_list:
        got = [tuple(t.shape[1:]) for t in latents]
        if got != [tuple(s) for s in shapes]:
            raise ValueError(f'latents of shapes {got} do not fit the LR image of size {lq_h}x{lq_w}: expected '
                             f'{shapes}')
    outputs = [torch.zeros(latents[0].shape[0], lq.shape[1], lq_h * scale, lq_w * scale) for latents in latents_list]
    for t in tile_boxes(lq_h, lq_w, tile, overlap):
        (cy0, cy1, cx0, cx1), (iy0, iy1, ix0, ix1) = t.core, t.context
        cond = net.condition(lq[..., iy0:iy1, ix0:ix1].to(device))
        box_padded = net.padded_lq_size(iy1 - iy0, ix1 - ix0)
        for out, latents in zip(outputs, latents_list):
            crops = [_latent_crop(z, (iy0, ix0), padded, box_padded).to(device) for z in latents]
            sr = net.decode(cond=cond, latents=crops)
            out[..., cy0 * scale:cy1 * scale, cx0 * scale:cx1 * scale] = sr[..., (cy0 - iy0) * scale:(cy1 - iy0) *
                                                                            scale, (cx0 - ix0) * scale:(cx1 - ix0) *
                                                                            scale].cpu()
        if progress is not None:
            progress()
    return outputs


def receptive_radius(net: Union[torch.nn.Module, dict]) -> int:
    """Upper bound, in LR pixels, of how far an output pixel's inputs (LR pixels and latent cells) can lie from
    the LR pixel it belongs to, counted from the architecture.

    Encoder: conv_first and conv_body (1 each) and, per RRDB, 3 dense blocks whose longest path is 5 3x3 convs
    (15); + 1 for resampling the features to each level's grid. Flow (decoding from the coarsest level, whose
    pixels are p = 2^l / scale LR pixels): every conditional step adds 2p (3x3, 1x1, 3x3 sub-network on z1 and on
    the features), a split 1p, the un-squeeze p/2. Plain steps (ActNorm, 1x1 conv) add nothing.

    Args:
        net (SRFlowNet | dict): The network, or its constructor arguments (``scale``, ``num_block``,
            ``flow_steps``; SRFlowNet's defaults otherwise), e.g. ``RELEASED_CONFIGS['SRFlow_DF2K_4X']``.
    """
    if isinstance(net, dict):
        scale, num_block, flow_steps = net.get('scale', 4), net.get('num_block', 23), net.get('flow_steps', 16)
    else:
        scale, num_block = net.scale, len(net.encoder.body)
        flow_steps = sum(step.conditional for step in net.levels[0].steps)
    num_levels = int(math.log2(scale)) + 1
    cond_radius = 1 + 15 * num_block + 1 + 1
    radius = 0.0
    for level in reversed(range(1, num_levels + 1)):
        p = 2**level / scale
        if level < num_levels - 1:  # split
            radius += p
        for _ in range(flow_steps):
            radius = max(radius, cond_radius) + 2 * p
        radius += p / 2
    return int(math.ceil(radius))


def needed_overlap(net: Union[torch.nn.Module, dict]) -> int:
    """The smallest even overlap covering ``receptive_radius(net)`` (a network or its config dict): tiled
    decoding is then exact."""
    radius = receptive_radius(net)
    return radius + radius % 2


def measure_receptive_radius(net: torch.nn.Module,
                             lq_h: int,
                             lq_w: int,
                             generator: Optional[torch.Generator] = None) -> int:
    """Measures the radius by back-propagating one output pixel (in the middle of an LR image of lq_h x lq_w)
    to the LR image and the latents; returns the largest distance, in LR pixels, of any input with a non-zero
    gradient. Layers still at their zero initialisation hide dependencies (the bound is then not reached).

    Returns:
        int: The measured radius (only meaningful when it is well below lq_h / 2 and lq_w / 2).
    """
    device = next(net.parameters()).device
    lq = torch.rand(1, net.in_channels, lq_h, lq_w, generator=generator).to(device).requires_grad_(True)
    latents = [z.requires_grad_(True) for z in net.draw_latents(lq_h, lq_w, 0.8, generator, device=device)]
    with torch.enable_grad():
        sr = net.decode(lq, latents=latents)
        cy, cx = (lq_h // 2) * net.scale + net.scale // 2, (lq_w // 2) * net.scale + net.scale // 2
        sr[0, :, cy, cx].sum().backward()
    ly, lx = lq_h // 2, lq_w // 2
    padded = net.padded_lq_size(lq_h, lq_w)

    def reach(grad, cell_h, cell_w):
        ys, xs = torch.nonzero(grad.abs().sum((0, 1)) > 0, as_tuple=True)
        if ys.numel() == 0:
            return 0
        # LR pixels covered by each cell: [floor(i * c), ceil((i + 1) * c) - 1]
        dy = torch.maximum((ly - torch.floor(ys * cell_h)).abs(), (torch.ceil((ys + 1) * cell_h) - 1 - ly).abs())
        dx = torch.maximum((lx - torch.floor(xs * cell_w)).abs(), (torch.ceil((xs + 1) * cell_w) - 1 - lx).abs())
        return int(torch.maximum(dy, dx).max())

    radius = reach(lq.grad, 1.0, 1.0)
    for z in latents:
        radius = max(radius, reach(z.grad, padded[0] / z.shape[-2], padded[1] / z.shape[-1]))
    return radius


# ---------------------------------------------------------------------------------------------------- memory
TILE_CHOICES = (512, 256, 128, 64, 32)
HR_BYTES_PER_PIXEL = 80  # per HR pixel and sample: noise, latents, output, 8-bit conversion (docs/robustness.md)


def _tensor_bytes(obj, seen):
    if torch.is_tensor(obj):
        key = (obj.untyped_storage().data_ptr(), obj.device)
        if key in seen:
            return 0
        seen.add(key)
        return obj.untyped_storage().nbytes()
    if isinstance(obj, dict):
        return sum(_tensor_bytes(v, seen) for v in obj.values())
    if isinstance(obj, (list, tuple)):
        return sum(_tensor_bytes(v, seen) for v in obj)
    if hasattr(obj, '__dict__'):
        return _tensor_bytes(vars(obj), seen)
    return 0


@torch.no_grad()
def condition_bytes_per_pixel(net: torch.nn.Module, channels: int = 3, probe: int = 16) -> float:
    """Bytes per LR pixel of ``net.condition`` (what the network keeps of an LR image while it decodes it), measured
    on a ``probe`` x ``probe`` image: it grows linearly with the pixels."""
    device = next(net.parameters()).device
    cond = net.condition(torch.zeros(1, channels, probe, probe, device=device))
    return _tensor_bytes(cond, set()) / probe**2


def available_memory(device: Union[str, torch.device]) -> Optional[int]:
    """Bytes that can still be allocated on ``device``: free CUDA memory, or the CPU's MemAvailable; None when
    unknown."""
    device = torch.device(device)
    if device.type == 'cuda':
        return torch.cuda.mem_get_info(device)[0]
    try:
        with open('/proc/meminfo', encoding='ascii') as f:
            for line in f:
                if line.startswith('MemAvailable:'):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def _needed(per_lr_pixel, lq_h, lq_w, scale, tile, overlap):
    seen_h, seen_w = (lq_h, lq_w) if not tile else (min(lq_h, tile + 2 * overlap), min(lq_w, tile + 2 * overlap))
    return per_lr_pixel * seen_h * seen_w + HR_BYTES_PER_PIXEL * lq_h * lq_w * scale**2


def check_memory(net: torch.nn.Module,
                 lq_shape: Sequence[int],
                 tile: Optional[int],
                 overlap: int,
                 name: str,
                 available: Optional[int] = None) -> None:
    """Refuses, before any sampling, an image whose decoding cannot fit: a lower bound of its memory (the LR
    condition of what the network sees at once, plus the HR-size buffers of one sample) against the memory
    available, naming the largest ``--tile`` that fits.

    Args:
        net (SRFlowNet): The network (on its device).
        lq_shape (tuple): [1, C, h, w] of the largest LR image.
        tile (int | None), overlap (int): As ``srflow-sample``'s ``--tile`` / ``--tile_overlap``.
        name (str): The image, for the error.
        available (int | None): Bytes available; default :func:`available_memory` of the network's device.

    Raises:
        MemoryError: naming the image, the bound, the memory available and a ``--tile`` that fits (or none).
    """
    device = next(net.parameters()).device
    available = available_memory(device) if available is None else available
    if available is None:
        return
    lq_h, lq_w = lq_shape[-2:]
    per_lr_pixel = condition_bytes_per_pixel(net, lq_shape[-3])
    needed = _needed(per_lr_pixel, lq_h, lq_w, net.scale, tile, overlap)
    if needed <= available:
        return
    fits = [t for t in TILE_CHOICES if _needed(per_lr_pixel, lq_h, lq_w, net.scale, t, overlap) <= available]
    how = f'with --tile {tile}' if tile else 'untiled'
    advice = (f'--tile {fits[0]} fits' if fits and fits[0] != tile else
              'no --tile fits (the HR image alone is too large): use a smaller image or a device with more memory')
    raise MemoryError(f'{name} ({lq_w}x{lq_h}): sampling it {how} needs at least {needed / 2**30:.1f} GiB on '
                      f'{device}, {available / 2**30:.1f} GiB are available; {advice}.')
