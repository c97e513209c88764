"""Naming and seeding of samples: the one rule that validation, ``srflow-sample``, ``srflow-latent`` and
``srflow-measure`` share, so that the same seed gives the same sample everywhere and every output can be measured.

- Name: an input ``<dir>/0801x4.png`` is image ``0801`` (:func:`image_name`); its sample ``k`` at temperature ``T``
  is ``0801[_<tag>]_t<T>_s<k>.png`` (:func:`output_name`; validation puts the iteration or the test suffix in
  ``<tag>``), which ``srflow-measure`` pairs with the GT ``0801.png`` and reads the temperature from.
- Seed: each image has its own CPU generator seeded from (seed, image name) (:func:`image_generator`), so a sample
  does not depend on the other images of a folder, nor on the device.
- Draw: sample ``k`` has unit-variance latents ``z_k``, the ``k``-th draw of that generator (:func:`draw_noise`); at
  temperature ``T`` it decodes ``T * z_k``. The samples of all temperatures share their noise, and temperature 0
  has one sample (all its latents are zero).
"""
import hashlib
import re
from os import path as osp

import torch

__all__ = ['image_name', 'output_names', 'temperature_tag', 'output_name', 'temperature_of', 'run_tag_of',
           'image_generator',
           'sample_keys', 'draw_noise', 'scaled', 'TEMPERATURE_TAG']

# '<image>..._t<temperature tag>_s<sample>' (tags as temperature_tag writes them: 0, 0.9, 1e-05)
TEMPERATURE_TAG = re.compile(r'_t(\d+(?:\.\d+)?(?:e[+-]\d+)?)_s\d+$')


def image_name(path, scale):
    """File stem without a DIV2K ``x<scale>`` suffix: ``0801x4.png`` -> ``0801`` (at scale 4). The suffix is only
    removed after a digit, as in DIV2K's names: ``box4.png`` and ``img_x4.png`` keep their stems."""
    stem = osp.splitext(osp.basename(path))[0]
    suffix = f'x{scale}'
    head = stem[:-len(suffix)]
    return head if stem.endswith(suffix) and head[-1:].isdigit() else stem


def output_names(paths, scale):
    """The ``image_name`` of every input, checked to be unique (the outputs and the random generator of an image
    follow from its name, so two inputs of one name would overwrite each other's samples).

    Returns:
        list[str]: One name per path, in order.

    Raises:
        ValueError: naming the input files that share a name.
    """
    names = [image_name(p, scale) for p in paths]
    owners = {}
    for path, name in zip(paths, names):
        owners.setdefault(name, []).append(path)
    clashes = {name: files for name, files in owners.items() if len(files) > 1}
    if clashes:
        listed = '; '.join(f'{", ".join(files)} -> {name}' for name, files in sorted(clashes.items()))
        raise ValueError(f'Input images would get the same output name (and overwrite each other): {listed}. '
                         'Rename or move one of each.')
    return names


def temperature_tag(temperature):
    """How a temperature is written in output names (``0.9`` -> ``'0.9'``, ``0`` -> ``'0'``)."""
    return f'{float(temperature):g}'


def output_name(name, temperature, sample, tag=None):
    """``<name>[_<tag>]_t<temperature tag>_s<sample>.png``, e.g. ``0801_t0.9_s2.png``, ``0801_5000_t0.9_s2.png``."""
    middle = '' if tag is None else f'_{tag}'
    return f'{name}{middle}_t{temperature_tag(temperature)}_s{sample}.png'


def temperature_of(path, owner):
    """The temperature tag (a string, ``'0.9'``) of a file of image ``owner`` named ``<owner>..._t<T>_s<k>``, or
    None. The tag must lie after the image name (an image named ``x_t1_s2`` does not tag its file ``x_t1_s2.png``)."""
    match = TEMPERATURE_TAG.search(osp.splitext(osp.basename(path))[0])
    return match.group(1) if match and match.start() >= len(owner) else None


def run_tag_of(path, owner):
    """The ``<tag>`` (iteration or test suffix, ``'5000'``) of a file of image ``owner`` named
    ``<owner>_<tag>_t<T>_s<k>``; ``''`` for ``<owner>_t<T>_s<k>``; None for a file without a temperature tag."""
    stem = osp.splitext(osp.basename(path))[0]
    match = TEMPERATURE_TAG.search(stem)
    if not match or match.start() < len(owner):
        return None
    return stem[len(owner):match.start()].lstrip('_')


def image_generator(seed, name):
    """A CPU torch.Generator seeded from (seed, image name): independent of the other images processed."""
    digest = hashlib.sha256(f'{seed}/{name}'.encode()).digest()
    return torch.Generator().manual_seed(int.from_bytes(digest[:8], 'little') & (2**63 - 1))


def sample_keys(temperatures, num_samples):
    """(temperature, sample) of every output, in order: ``num_samples`` per temperature > 0, one at 0."""
    return [(float(t), s) for t in temperatures for s in range(num_samples if t > 0 else 1)]


def draw_noise(net, lq_h, lq_w, num_samples, generator):
    """The unit-variance latents of samples 0..num_samples-1 of one LR image (on the CPU), drawn in that order.

    Args:
        net: A flow with ``draw_latents(lq_h, lq_w, temperature, generator, device=...)``.
        generator (torch.Generator): The image's CPU generator (:func:`image_generator`).

    Returns:
        list[list[Tensor]]: One list of latents per sample.
    """
    return [net.draw_latents(lq_h, lq_w, 1.0, generator, device='cpu') for _ in range(num_samples)]


def scaled(noise, temperature, device=None):
    """The latents of one sample at ``temperature``: ``temperature * noise`` (on ``device``)."""
    return [(z * float(temperature)).to(device) if device is not None else z * float(temperature) for z in noise]
