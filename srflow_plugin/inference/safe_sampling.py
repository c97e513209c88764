"""Safe sampling: samples without black patches, by redrawing the latents of the offending region colder.

At moderate temperatures some latents decode to huge or non-finite pixels ("black patches", the release's issues 2,
22 and 26; "exploding inverses"). The rule used here (measured in docs/real-world.md):

1. A pixel of a decoded sample is *bad* when any channel is non-finite or lies outside
   [-``out_of_range``, 1 + ``out_of_range``] (default 0.5: far outside the image range; the samples of a healthy model
   overshoot [0, 1] by a few hundredths).
2. Every latent cell whose HR footprint covers a bad pixel, and ``margin`` cells around it, belongs to the region.
3. The region's latents are multiplied by ``factor`` (0.5: the same noise at half the temperature) and the sample
   is decoded again; up to ``rounds`` times (4: down to 1/16 of the temperature), the region growing by the pixels
   still bad. After that the region's latents are set to 0 (temperature 0 there).
4. A sample without bad pixels is returned as it was decoded, bit for bit (nothing is decoded again).

:func:`decode_safely` takes a decoding function (``latents -> HR images``), so that whole-image, tiled and
precomputed-condition decoding all go through the same rule.
"""
import math
from dataclasses import dataclass
from typing import Callable, Iterable, List, Optional, Sequence, Tuple

import torch
from torch.nn import functional as F

__all__ = ['Repair', 'bad_pixel_mask', 'latent_region', 'decode_safely', 'repair_summary']

OUT_OF_RANGE = 0.5
FACTOR = 0.5
ROUNDS = 4
MARGIN = 1


@dataclass
class Repair:
    """What safe sampling did to one decoded batch.

    Attributes:
        pixels (int): Bad pixels (positions) of the samples as first decoded; 0: returned untouched.
        samples (int): Samples of the batch that had bad pixels.
        rounds (int): Re-decodes made (0 when nothing was bad).
        remaining (int): Bad pixels left at the end (non-zero only if even temperature 0 in the region fails).
    """
    pixels: int = 0
    samples: int = 0
    rounds: int = 0
    remaining: int = 0


def bad_pixel_mask(sr: torch.Tensor, out_of_range: float = OUT_OF_RANGE) -> torch.Tensor:
    """[B, 1, H, W] bool: pixels with a non-finite channel or one outside [-out_of_range, 1 + out_of_range]."""
    sr = sr.detach()
    bad = ~sr.isfinite() | (sr < -out_of_range) | (sr > 1 + out_of_range)
    return bad.any(dim=1, keepdim=True)


def latent_region(mask: torch.Tensor, latent_size: Sequence[int], margin: int = MARGIN) -> torch.Tensor:
    """The cells of a latent of ``latent_size`` (h, w) whose HR footprint covers a pixel of ``mask`` [B, 1, H, W],
    grown by ``margin`` cells: [B, 1, h, w] bool. A cell covers ceil(H / h) x ceil(W / w) pixels from the top left
    (the flow pads the image at the bottom/right)."""
    h, w = latent_size
    stride_h, stride_w = math.ceil(mask.shape[-2] / h), math.ceil(mask.shape[-1] / w)
    padded = F.pad(mask.float(), (0, w * stride_w - mask.shape[-1], 0, h * stride_h - mask.shape[-2]))
    cells = F.max_pool2d(padded, (stride_h, stride_w))
    if margin:
        cells = F.max_pool2d(cells, 2 * margin + 1, stride=1, padding=margin)
    return cells > 0


@torch.no_grad()
def decode_safely(decode: Callable[[List[torch.Tensor]], torch.Tensor],
                  latents: Sequence[torch.Tensor],
                  sr: Optional[torch.Tensor] = None,
                  out_of_range: float = OUT_OF_RANGE,
                  factor: float = FACTOR,
                  rounds: int = ROUNDS,
                  margin: int = MARGIN) -> Tuple[torch.Tensor, Repair]:
    """Decodes ``latents`` and repairs the samples with bad pixels (the rule of this module's docstring).

    Args:
        decode (callable): latents (list of [B, C, h, w]) -> HR images [B, C, H, W].
        latents (list[Tensor]): The samples' latents at their temperature (not modified).
        sr (Tensor | None): ``decode(latents)`` when already computed.
        out_of_range (float): How far outside [0, 1] a value is bad.
        factor (float): Latent multiplier per round in the region, in [0, 1).
        rounds (int): Rounds at ``factor`` before the region is set to 0.
        margin (int): Cells added around the region on every latent.

    Returns:
        tuple: (HR images, :class:`Repair`). Samples of the batch without bad pixels are the first decode's.
    """
    if sr is None:
        sr = decode(latents)
    mask = bad_pixel_mask(sr, out_of_range)
    bad_samples = mask.flatten(1).any(1)
    if not bool(bad_samples.any()):
        return sr, Repair()
    first, pixels = sr, int(mask.sum())
    region, latents = mask, [z.clone() for z in latents]
    for done in range(1, rounds + 2):
        for z in latents:
            cells = latent_region(region, z.shape[-2:], margin).to(z.device)
            z.copy_(torch.where(cells, z * factor if done <= rounds else torch.zeros_like(z), z))
        sr = decode(latents)
        mask = bad_pixel_mask(sr, out_of_range)
        if not bool(mask.any()):
            break
        region = region | mask.to(region.device)
    keep = (~bad_samples).view(-1, 1, 1, 1).to(sr.device)
    sr = torch.where(keep, first.to(sr.device), sr)  # untouched samples stay the first decode, bit for bit
    return sr, Repair(pixels, int(bad_samples.sum()), done, int(mask.sum()))


def repair_summary(repairs: Iterable[Repair]) -> str:
    """One line over several :class:`Repair` records, e.g. for the end of a run."""
    repairs = [r for r in repairs if r.pixels]
    if not repairs:
        return 'safe sampling: no sample needed a repair'
    remaining = sum(r.remaining for r in repairs)
    return (f'safe sampling repaired {sum(r.samples for r in repairs)} sample(s), {sum(r.pixels for r in repairs)} '
            f'bad pixel(s), in up to {max(r.rounds for r in repairs)} round(s)'
            + (f'; {remaining} pixel(s) still bad' if remaining else ''))
