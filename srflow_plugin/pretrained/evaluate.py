"""Held-out figures of an SRFlow model beside bicubic and its encoder alone (docs/model-card.md).

One row per method, each the mean over the images of :func:`srflow_plugin.inference.measuring.measure_image` (PSNR and
SSIM on RGB with ``crop_border``, LR-PSNR against the LR input, LPIPS with AlexNet, NTIRE diversity over the
samples of one temperature > 0).
"""
import time

import torch

from srflow_plugin.inference.lr_consistency import back_project
from srflow_plugin.inference.measuring import format_markdown, mean_row, measure_image
from srflow_plugin.inference.sampling import sample_image
from srflow_plugin.metrics import bicubic_upscale_matlab
from srflow_plugin.utils.image import to_image, to_tensor
from srflow_plugin.utils.sampling import image_generator


def _row(method, per_image):
    row = mean_row(per_image)
    row['image'] = method
    return row


@torch.no_grad()
def evaluate_methods(pairs, flow, rrdb=None, temperatures=(0.0, 0.8), num_samples=3, seed=0, crop_border=4,
                     projection_iterations=0, use_lpips=True):
    """Rows of figures: bicubic, the encoder alone (if given), and the flow at each temperature.

    Args:
        pairs (list[tuple]): (name, LR image, GT image), HWC uint8 BGR.
        flow (SRFlowNet): The flow (eval mode, CPU or CUDA).
        rrdb (nn.Module | None): A plain SR network (the stage-1 encoder), or None to leave its row out.
        temperatures (Sequence[float]): Temperatures of the flow rows.
        num_samples (int): Samples per temperature > 0 (their mean, and their diversity).
        seed (int): Seed of the samples (per image, as srflow-sample's ``--seed``).
        crop_border (int): Border left out of PSNR, SSIM and LPIPS.
        projection_iterations (int): > 0 adds each flow row again after LR-consistency back-projection
            (:func:`srflow_plugin.inference.lr_consistency.back_project`) with this many iterations.
        use_lpips (bool): LPIPS and diversity columns.

    Returns:
        tuple: (rows, seconds per flow image and temperature) where rows are dicts with 'image' naming the method.
    """
    scale = flow.scale
    device = next(flow.parameters()).device
    methods = {'bicubic (MATLAB)': []}
    if rrdb is not None:
        methods['RRDB encoder alone'] = []
    timings = []
    for name, lq, gt in pairs:
        measure = dict(gt=gt, lq=lq, crop_border=crop_border, use_lpips=use_lpips, names=(name, name))
        methods['bicubic (MATLAB)'].append(measure_image([bicubic_upscale_matlab(lq, scale)], **measure))
        if rrdb is not None:
            sr = to_image(rrdb(to_tensor(lq).to(device)).cpu())
            methods['RRDB encoder alone'].append(measure_image([sr], **measure))
        start = time.perf_counter()
        samples = sample_image(flow, to_tensor(lq), temperatures, num_samples, image_generator(seed, name))
        timings.append((time.perf_counter() - start) / len(samples))
        for t in temperatures:
            tensors = [sr for (key_t, _), sr in samples.items() if key_t == float(t)]
            label = f'SRFlow tau={t:g}'
            methods.setdefault(label, []).append(measure_image([to_image(sr) for sr in tensors], **measure))
            if projection_iterations:
                projected = [to_image(back_project(sr.clamp(0, 1), to_tensor(lq), scale, projection_iterations))
                             for sr in tensors]
                methods.setdefault(f'{label} + projection', []).append(measure_image(projected, **measure))
    rows = [_row(method, per_image) for method, per_image in methods.items()]
    return rows, sum(timings) / len(timings)


def format_rows(rows):
    """The rows as a markdown table (srflow-measure's columns, the method in the first one)."""
    return format_markdown(rows).replace('| image |', '| method |', 1)
