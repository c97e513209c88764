"""Latent-space tools: encode an HR image to its latents, transfer latents between images, temperature sweeps.

    srflow-latent encode   --hr HR.png [--lr LR.png] -c ckpt.pth -o out/
    srflow-latent transfer --source A.png --target B.png --box X Y W H [--offset DX DY]
                           [--mode content|style] [--no_normalize] -c ckpt.pth -o out/
    srflow-latent sweep    -i LR.png [--temperatures 0 0.2 ... 1.2] [--seed 0] -c ckpt.pth -o out/

(all take ``--opt train.yml`` for checkpoints without ``network_g``, and ``--device``). Without an LR image, the
HR image is cropped to a multiple of the scale and downscaled with MATLAB bicubic (rounded to 8 bits).

Latents are the standardised list of ``SRFlowNet.encode`` ([split latents..., top latent], each ~ N(0, I) under
the model); latent k has cells of ``stride_k`` HR pixels (x4: 2 and 8; x8: 2, 4 and 16). Because the flow is
bijective, decoding an image's latents with its own LR gives the image back (up to float error).

Transfers (SRFlow paper, section 4.4):

- content transfer (``content_transfer``): the latents of a box of the source image replace the target's
  latents in the same box (or shifted by ``offset``); decoded with the target's LR, the region takes the source's
  texture while staying consistent with the target's LR. Box coordinates are HR pixels; on a level with stride k
  the box covers the cells ``round(x / k) .. round((x + w) / k)`` (likewise for y), so boxes that are multiples of
  the coarsest stride move whole cells on every level.
- style transfer (``style_transfer``): all latents of image A decoded with the LR of image B (same size): B's
  content with A's high-frequency "style".
- latent normalisation (on by default): the transferred latents are standardised per channel over the region and
  given the mean and standard deviation of the target's own latents in that region (regions of a single cell are
  copied as they are), so that the pasted latents do not bring another "temperature" along.
"""
import argparse
import math
import os
import sys
from os import path as osp

import cv2
import numpy as np
import torch

from srflow_plugin.inference.grid import make_grid
from srflow_plugin.inference.loading import load_srflow
from srflow_plugin.inference.safe_sampling import decode_safely, repair_summary
from srflow_plugin.metrics import bicubic_downscale
from srflow_plugin.pretrained import resolve_checkpoint
from srflow_plugin.tools.command import HelpFormatter, add_device_argument, console_command, resolve_device
from srflow_plugin.utils.checkpoint import atomic_save, read_checkpoint
from srflow_plugin.utils.image import read_image, to_image, to_tensor, write_image
from srflow_plugin.utils.paths import check_outputs
from srflow_plugin.utils.sampling import draw_noise, image_generator, image_name, scaled

__all__ = ['latent_strides', 'reconstruction_error', 'encode_image', 'save_latents', 'load_latents', 'box_cells',
           'transfer_latents', 'content_transfer', 'style_transfer', 'temperature_sweep', 'main']

SWEEP_TEMPERATURES = [0.0, 0.2, 0.4, 0.6, 0.8, 1.0, 1.2]
DIFF_GAIN = 4  # the difference picture shows |after - before| * 4, so small changes are visible


def latent_strides(net, lq_h, lq_w):
    """HR pixels per latent cell of each latent level, for an LR image of lq_h x lq_w."""
    padded_h = net.padded_lq_size(lq_h, lq_w)[0] * net.scale
    return [padded_h // shape[1] for shape in net.latent_shapes(lq_h, lq_w)]


def reconstruction_error(reconstruction, gt):
    """(max |reconstruction - gt|, PSNR in dB on [0, 1]) of float tensors."""
    diff = (reconstruction.float() - gt.float())
    mse = float(diff.pow(2).mean())
    return float(diff.abs().max()), (float('inf') if mse == 0 else 10 * math.log10(1.0 / mse))


@torch.no_grad()
def encode_image(net, gt, lq):
    """Encodes an HR image and decodes its latents back with the same LR.

    Args:
        net (SRFlowNet): The network (eval mode).
        gt (Tensor): HR image [1, C, scale*h, scale*w] in [0, 1].
        lq (Tensor): Its LR image [1, C, h, w].

    Returns:
        dict: ``latents`` (list of tensors, CPU), ``reconstruction`` (Tensor, CPU), ``nll`` (bits per dimension),
        ``max_abs_error`` and ``psnr`` of the reconstruction against ``gt``.
    """
    device = next(net.parameters()).device
    cond = net.condition(lq.to(device))
    latents, nll = net.encode(gt.to(device), cond=cond)
    reconstruction = net.decode(cond=cond, latents=latents).cpu()
    max_abs, psnr = reconstruction_error(reconstruction, gt)
    return dict(latents=[z.cpu() for z in latents], reconstruction=reconstruction, nll=float(nll[0]),
                max_abs_error=max_abs, psnr=psnr)


def save_latents(path, latents, **meta):
    """Writes ``{'latents': [...], **meta}`` (e.g. lq_size, scale), atomically."""
    atomic_save({'latents': [z.detach().cpu() for z in latents], **meta}, path)


def load_latents(path):
    """The latent list saved by ``save_latents`` (FileNotFoundError / ValueError naming the file)."""
    data = read_checkpoint(path, 'Latent file')
    if not isinstance(data, dict) or not isinstance(data.get('latents'), list):
        raise ValueError(f'{path} is not a latent file written by save_latents (no "latents" list).')
    return data['latents']


def box_cells(box, stride):
    """(y0, y1, x0, x1) latent cells covered by an HR box (x, y, w, h) on a level of ``stride`` HR pixels."""
    x, y, w, h = box

    def cell(v):
        return int(math.floor(v / stride + 0.5))

    return cell(y), cell(y + h), cell(x), cell(x + w)


def _standardise_to(values, reference):
    """values standardised per channel over (H, W) and given reference's per-channel mean and std."""
    if values.shape[-2] * values.shape[-1] < 2:
        return values
    dims = (-2, -1)
    mean, std = values.mean(dims, keepdim=True), values.std(dims, keepdim=True)
    ref_mean, ref_std = reference.mean(dims, keepdim=True), reference.std(dims, keepdim=True)
    return (values - mean) / (std + 1e-6) * ref_std + ref_mean


def transfer_latents(source, target, box, strides, offset=(0, 0), normalize=True):
    """Copies the source latents under ``box`` into the target latents under ``box`` shifted by ``offset``.

    Args:
        source, target (list[Tensor]): Latent lists (may be of different image sizes).
        box (tuple): (x, y, w, h) in HR pixels of the source; an empty box (w or h 0) changes nothing.
        strides (list[int]): HR pixels per cell of each latent level (``latent_strides``).
        offset (tuple): (dx, dy) in HR pixels from the source box to where it goes in the target.
        normalize (bool): Give the pasted latents the target region's per-channel mean and std.

    Returns:
        list[Tensor]: New target latents (the inputs are not modified).
    """
    if len(source) != len(target) or len(strides) != len(target):
        raise ValueError(f'source ({len(source)}), target ({len(target)}) and strides ({len(strides)}) must list '
                         'the same latent levels')
    x, y, w, h = box
    if w < 0 or h < 0:
        raise ValueError(f'box {tuple(box)} has a negative size')
    dx, dy = offset
    result = []
    for level, (src, tgt, stride) in enumerate(zip(source, target, strides)):
        sy0, sy1, sx0, sx1 = box_cells(box, stride)
        ty0, _, tx0, _ = box_cells((x + dx, y + dy, w, h), stride)
        ty1, tx1 = ty0 + sy1 - sy0, tx0 + sx1 - sx0
        out = tgt.clone()
        if sy1 > sy0 and sx1 > sx0:
            if sy0 < 0 or sx0 < 0 or sy1 > src.shape[-2] or sx1 > src.shape[-1]:
                raise ValueError(f'box {tuple(box)} (cells y {sy0}:{sy1}, x {sx0}:{sx1} of latent {level}) is '
                                 f'outside the source latent of shape {tuple(src.shape)}')
            if ty0 < 0 or tx0 < 0 or ty1 > tgt.shape[-2] or tx1 > tgt.shape[-1]:
                raise ValueError(f'box {tuple(box)} with offset {tuple(offset)} (cells y {ty0}:{ty1}, x {tx0}:{tx1} '
                                 f'of latent {level}) is outside the target latent of shape {tuple(tgt.shape)}')
            pasted = src[..., sy0:sy1, sx0:sx1]
            if normalize:
                pasted = _standardise_to(pasted, tgt[..., ty0:ty1, tx0:tx1])
            out[..., ty0:ty1, tx0:tx1] = pasted
        result.append(out)
    return result


def _decode_with(decode, latents, safe):
    if not safe:
        return decode(latents)
    sr, repair = decode_safely(decode, latents)
    if repair.pixels:
        print(repair_summary([repair]), file=sys.stderr)
    return sr


@torch.no_grad()
def _decode(net, lq, latents, safe=False):
    device = next(net.parameters()).device
    cond = net.condition(lq.to(device), precompute=False)  # as decode(lq) does: the features only
    return _decode_with(lambda z: net.decode(cond=cond, latents=z), [z.to(device) for z in latents], safe).cpu()


def content_transfer(net, source_latents, target_latents, target_lq, box, offset=(0, 0), normalize=True, safe=False):
    """Image content transfer: the target decoded with the source's latents pasted into ``box`` (+ ``offset``);
    ``safe`` repairs bad pixels (:mod:`srflow_plugin.inference.safe_sampling`).

    Returns:
        Tensor: HR image [1, C, H, W] of the target's size (CPU, not clamped).
    """
    strides = latent_strides(net, *target_lq.shape[-2:])
    latents = transfer_latents(source_latents, target_latents, box, strides, offset, normalize)
    return _decode(net, target_lq, latents, safe)


def style_transfer(net, source_latents, target_lq, target_latents=None, normalize=False, safe=False):
    """LR-consistent style transfer: image A's latents decoded with image B's LR (same size).

    Args:
        net (SRFlowNet): The network.
        source_latents (list[Tensor]): Latents of A.
        target_lq (Tensor): LR of B.
        target_latents (list[Tensor]): Latents of B, needed for ``normalize``.
        normalize (bool): Standardise A's latents per channel to B's statistics over the whole image.
        safe (bool): Repair bad pixels (:mod:`srflow_plugin.inference.safe_sampling`).

    Returns:
        Tensor: HR image of B's size (CPU, not clamped).
    """
    shapes = net.latent_shapes(*target_lq.shape[-2:])
    got = [tuple(z.shape[1:]) for z in source_latents]
    if got != [tuple(s) for s in shapes]:
        raise ValueError(f'style transfer needs images of the same size: source latents {got} vs the target LR '
                         f'{tuple(target_lq.shape)} (latents {shapes})')
    latents = source_latents
    if normalize:
        if target_latents is None:
            raise ValueError('style transfer with normalize=True needs the target latents')
        latents = [_standardise_to(s, t) for s, t in zip(source_latents, target_latents)]
    return _decode(net, target_lq, latents, safe)


@torch.no_grad()
def temperature_sweep(net, lq, temperatures, generator, safe=False):
    """Sample 0 at every temperature: ``T * z_0`` with ``z_0`` the first draw of ``generator`` (as
    :mod:`srflow_plugin.utils.sampling` draws it), so that only the temperature changes along the sweep and each tile
    is the ``_s0`` sample that ``srflow-sample`` writes with the same seed.

    ``safe``: repair samples with bad pixels (:mod:`srflow_plugin.inference.safe_sampling`).

    Returns:
        list[Tensor]: HR images (CPU, not clamped), one per temperature.
    """
    device = next(net.parameters()).device
    cond = net.condition(lq.to(device))
    noise = draw_noise(net, *lq.shape[-2:], 1, generator)[0]
    return [_decode_with(lambda z: net.decode(cond=cond, latents=z), scaled(noise, t, device), safe).cpu()
            for t in temperatures]


# ---------------------------------------------------------------------------------------------------- CLI
def load_pair(hr_path, lr_path, scale):
    """(HR, LR) uint8 BGR images: the LR is read, or made by MATLAB bicubic from the HR cropped to a multiple of
    the scale; an HR larger than scale x LR by less than the scale is cropped at the bottom/right."""
    hr = read_image(hr_path)
    if lr_path is None:
        h, w = hr.shape[0] // scale * scale, hr.shape[1] // scale * scale
        if h < 2 * scale or w < 2 * scale:
            raise ValueError(f'HR image {hr_path} of size {hr.shape[1]}x{hr.shape[0]} is too small for scale {scale}')
        hr = hr[:h, :w]
        return hr, bicubic_downscale(hr, scale)
    lr = read_image(lr_path)
    h, w = lr.shape[0] * scale, lr.shape[1] * scale
    if not (h <= hr.shape[0] < h + scale and w <= hr.shape[1] < w + scale):
        raise ValueError(f'HR image {hr_path} ({hr.shape[1]}x{hr.shape[0]}) is not {scale}x its LR {lr_path} '
                         f'({lr.shape[1]}x{lr.shape[0]})')
    return hr[:h, :w], lr


def _encode_files(net, hr_path, lr_path):
    hr, lr = load_pair(hr_path, lr_path, net.scale)
    result = encode_image(net, to_tensor(hr), to_tensor(lr))
    return hr, lr, result


def run_encode(args, net):
    name = image_name(args.hr, net.scale)
    hr, lr, result = _encode_files(net, args.hr, args.lr)
    os.makedirs(args.output, exist_ok=True)
    latent_path = osp.join(args.output, f'{name}_latents.pt')
    save_latents(latent_path, result['latents'], lq_size=list(lr.shape[:2]), scale=net.scale,
                 checkpoint=osp.abspath(args.checkpoint))
    write_image(to_image(result['reconstruction']), osp.join(args.output, f'{name}_reconstruction.png'))
    if args.lr is None:
        write_image(lr, osp.join(args.output, f'{name}_lr.png'))
    report = (f'image: {args.hr} ({hr.shape[1]}x{hr.shape[0]}), LR: {args.lr or "MATLAB bicubic of the HR"} '
              f'({lr.shape[1]}x{lr.shape[0]})\nlatent shapes: {[tuple(z.shape[1:]) for z in result["latents"]]}\n'
              f'nll_bits_per_dim: {result["nll"]:.6f}\nnll_scale: continuous density, no dequantisation constant '
              '(training validation adds log2(q) with train.nll_opt.quantization q; srflow-test with '
              f'val.nll_quantization: q)\nmax_abs_error: {result["max_abs_error"]:.3e}\n'
              f'psnr_db: {result["psnr"]:.2f}\n')
    with open(osp.join(args.output, f'{name}_encode.txt'), 'w') as f:
        f.write(report)
    print(report + f'latents written to {latent_path}')
    return result


def _draw_box(img, box, color=(0, 0, 255)):
    img = img.copy()
    x, y, w, h = box
    if w > 0 and h > 0:
        cv2.rectangle(img, (x, y), (x + w - 1, y + h - 1), color, 1)
    return img


def run_transfer(args, net):
    _, _, source = _encode_files(net, args.source, args.source_lr)
    target_hr, target_lr, target = _encode_files(net, args.target, args.target_lr)
    lq = to_tensor(target_lr)
    normalize = not args.no_normalize
    if args.mode == 'style':
        after = style_transfer(net, source['latents'], lq, target['latents'], normalize, args.safe_sampling)
        target_box = source_box = (0, 0, 0, 0)
    else:
        after = content_transfer(net, source['latents'], target['latents'], lq, args.box, args.offset, normalize,
                                 args.safe_sampling)
        source_box = tuple(args.box)
        target_box = (args.box[0] + args.offset[0], args.box[1] + args.offset[1], args.box[2], args.box[3])
    before = to_image(target['reconstruction'])
    after_img = to_image(after)
    diff = np.clip(np.abs(after_img.astype(np.int32) - before) * DIFF_GAIN, 0, 255).astype(np.uint8)
    name = image_name(args.target, net.scale)
    os.makedirs(args.output, exist_ok=True)
    paths = {k: osp.join(args.output, f'{name}_{k}.png') for k in ('before', 'after', 'diff', 'transfer')}
    write_image(before, paths['before'])
    write_image(after_img, paths['after'])
    write_image(diff, paths['diff'])
    source_img = read_image(args.source)
    grid = make_grid([[('source', _draw_box(source_img, source_box)), ('target before', _draw_box(before, target_box)),
                       (f'after ({args.mode})', after_img), (f'|after-before| x{DIFF_GAIN}', diff)]])
    write_image(grid, paths['transfer'])
    print(f'{args.mode} transfer {args.source} -> {args.target}: wrote {", ".join(paths.values())}')
    return paths


def run_sweep(args, net):
    lq_img = read_image(args.input)
    name = image_name(args.input, net.scale)
    outputs = temperature_sweep(net, to_tensor(lq_img), args.temperatures, image_generator(args.seed, name),
                                args.safe_sampling)
    grid = make_grid([[(f'tau={t:g}', to_image(sr)) for t, sr in zip(args.temperatures, outputs)]])
    os.makedirs(args.output, exist_ok=True)
    path = osp.join(args.output, f'{name}_sweep.png')
    write_image(grid, path)
    print(f'temperature sweep of {args.input} ({len(outputs)} temperatures) written to {path}')
    return path


def parse_args(argv=None):
    parser = argparse.ArgumentParser(prog='srflow-latent', description=__doc__, formatter_class=HelpFormatter)
    sub = parser.add_subparsers(dest='command', required=True)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument('-c', '--checkpoint', default=None, help='SRFlowNet checkpoint (BasicSR .pth); default: the '
                        'built-in x4 model (docs/model-card.md)')
    common.add_argument('-o', '--output', required=True, help='output folder')
    common.add_argument('--opt', default=None, help='option yml whose network_g builds the network')
    add_device_argument(common)

    encode = sub.add_parser('encode', parents=[common], help='HR image -> latents (.pt) and reconstruction')
    encode.add_argument('--hr', required=True, help='HR image')
    encode.add_argument('--lr', default=None, help='its LR image (default: MATLAB bicubic of the HR)')

    transfer = sub.add_parser('transfer', parents=[common], help='content / style transfer between two images')
    transfer.add_argument('--source', required=True, help='HR image giving the latents')
    transfer.add_argument('--source_lr', default=None)
    transfer.add_argument('--target', required=True, help='HR image receiving them (its LR is decoded)')
    transfer.add_argument('--target_lr', default=None)
    transfer.add_argument('--mode', choices=('content', 'style'), default='content')
    transfer.add_argument('--box', type=int, nargs=4, metavar=('X', 'Y', 'W', 'H'), default=None,
                          help='source region in HR pixels (content mode)')
    transfer.add_argument('--offset', type=int, nargs=2, metavar=('DX', 'DY'), default=(0, 0),
                          help='where the box goes in the target, relative to the source box')
    transfer.add_argument('--no_normalize', action='store_true', help='paste the latents without standardising '
                          'them to the target region\'s statistics')

    sweep = sub.add_parser('sweep', parents=[common], help='one sample per temperature, same seed')
    sweep.add_argument('-i', '--input', required=True, help='LR image')
    sweep.add_argument('--temperatures', type=float, nargs='+', default=SWEEP_TEMPERATURES)
    sweep.add_argument('--seed', type=int, default=0)
    for sub_parser in (transfer, sweep):
        sub_parser.add_argument('--safe_sampling', action='store_true', help='repair non-finite or far out-of-range '
                                'pixels by redrawing that region\'s latents colder '
                                '(srflow_plugin.inference.safe_sampling)')
    args = parser.parse_args(argv)
    if args.command == 'transfer' and args.mode == 'content':
        if args.box is None:
            parser.error('transfer --mode content needs --box X Y W H')
        x, y, w, h = args.box
        if x < 0 or y < 0 or w <= 0 or h <= 0:
            parser.error(f'--box {x} {y} {w} {h}: X and Y must be >= 0 and W and H > 0 (an empty box would transfer '
                         'nothing)')
    if args.command == 'sweep' and any(not math.isfinite(t) or t < 0 for t in args.temperatures):
        parser.error(f'--temperatures must be finite and >= 0, got {args.temperatures}')
    return args


def main(argv=None):
    args = parse_args(argv)
    inputs = ('hr', 'lr', 'input', 'source', 'source_lr', 'target', 'target_lr')
    check_outputs({'-o': args.output}, {f'--{key}': getattr(args, key, None) for key in inputs})
    args.checkpoint = resolve_checkpoint(args.checkpoint, args.opt, 'srflow-latent')
    net = load_srflow(args.checkpoint, args.opt, resolve_device(args.device))
    return {'encode': run_encode, 'transfer': run_transfer, 'sweep': run_sweep}[args.command](args, net)


cli = console_command(main, 'srflow-latent')

if __name__ == '__main__':
    sys.exit(cli())
