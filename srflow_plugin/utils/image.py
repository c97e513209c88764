"""Image files and tensors: the one place that reads images, converts them and fits a GT to an SR image.

Validation, ``srflow-sample``, ``srflow-latent``, ``srflow-measure`` and ``srflow-prepare-data`` all read and convert
images here, so an unreadable file gets the same error everywhere and pixels are converted one way.
"""
import os
from os import path as osp

import cv2
import numpy as np
from basicsr.utils import img2tensor, scandir, tensor2img

__all__ = ['IMG_EXTENSIONS', 'is_image_file', 'list_images', 'images_in', 'read_image', 'write_image', 'check_writable',
           'to_tensor', 'to_image',
           'crop_gt_to_sr', 'nonfinite_pixels', 'NONFINITE_REPORT', 'record_nonfinite',
           'read_nonfinite']

IMG_EXTENSIONS = ('.png', '.jpg', '.jpeg', '.bmp', '.tif', '.tiff', '.webp', '.ppm')  # compared lower-cased

_JPEG_EXTENSIONS = ('.jpg', '.jpeg')


def is_image_file(path):
    """Whether ``path`` has an image extension (in any case: ``.png``, ``.Png``, ``.PNG``)."""
    return osp.splitext(path)[1].lower() in IMG_EXTENSIONS


def images_in(folder, recursive=False):
    """The image files of a folder (by extension, sorted); a FileNotFoundError naming a missing folder."""
    if not osp.isdir(folder):
        raise FileNotFoundError(f'Folder {folder} does not exist.')
    return sorted(osp.join(folder, p) for p in scandir(folder, recursive=recursive) if is_image_file(p))


def list_images(path):
    """[path] for a file; the images (by extension, sorted, not recursive) of a folder; else an error."""
    if osp.isfile(path):
        return [path]
    if osp.isdir(path):
        images = images_in(path)
        if not images:
            raise FileNotFoundError(f'Folder {path} holds no images ({", ".join(IMG_EXTENSIONS)}).')
        return images
    raise FileNotFoundError(f'Input {path} is neither an image file nor a folder.')


def _jpeg_is_complete(path):
    """A JPEG ends with its end-of-image marker (FF D9), perhaps followed by padding; OpenCV decodes a truncated one
    without an error, filling the missing part with grey."""
    with open(path, 'rb') as f:
        f.seek(0, os.SEEK_END)
        size = f.tell()
        f.seek(max(0, size - 4096))
        tail = f.read().rstrip(b'\x00\r\n\t ')
    return tail.endswith(b'\xff\xd9')


def read_image(path, min_size=1):
    """An image file as HWC uint8 BGR (colour), or an error naming the file.

    Args:
        path (str): Image file.
        min_size (int): Smallest height and width accepted. Default: 1.

    Raises:
        FileNotFoundError: the file does not exist.
        OSError: the file is empty, truncated (JPEG), corrupt or not an image.
        ValueError: the image is smaller than ``min_size`` in height or width.
    """
    if not osp.isfile(path):
        raise FileNotFoundError(f'Image {path} does not exist.')
    if osp.getsize(path) == 0:
        raise OSError(f'Cannot read image {path}: the file is empty (0 bytes).')
    if osp.splitext(path)[1].lower() in _JPEG_EXTENSIONS and not _jpeg_is_complete(path):
        raise OSError(f'Cannot read image {path}: the JPEG is truncated (no end-of-image marker).')
    img = cv2.imread(path, cv2.IMREAD_COLOR)
    if img is None:
        raise OSError(f'Cannot read image {path} (corrupt or not an image).')
    if img.shape[0] < min_size or img.shape[1] < min_size:
        raise ValueError(f'Image {path} is {img.shape[1]}x{img.shape[0]} pixels; at least {min_size}x{min_size} '
                         'is needed.')
    return img


def write_image(img, path):
    """Writes a uint8 image (its folder is created); an OSError naming the file when it cannot be written."""
    try:
        os.makedirs(osp.dirname(osp.abspath(path)), exist_ok=True)
        ok = cv2.imwrite(path, img)
    except (OSError, cv2.error) as error:
        raise OSError(f'Cannot write image {path}: {error}') from error
    if not ok:
        raise OSError(f'Cannot write image {path} (folder not writable, disk full, or no encoder for its extension).')


def check_writable(folder):
    """Creates ``folder`` if needed and writes and removes a probe file there: an OSError naming the folder now,
    rather than after all the work."""
    probe = osp.join(folder, f'.write_probe{os.getpid()}')
    try:
        os.makedirs(folder, exist_ok=True)
        with open(probe, 'wb') as f:
            f.write(b'0')
        os.remove(probe)
    except OSError as error:
        raise OSError(f'Cannot write to {folder}: {error.strerror or error}') from error


def to_tensor(img):
    """uint8 BGR HWC -> float RGB [1, 3, h, w] in [0, 1]."""
    return img2tensor(img.astype(np.float32) / 255., bgr2rgb=True, float32=True).unsqueeze(0)


def to_image(tensor):
    """float RGB [1, 3, H, W] -> uint8 BGR HWC, clamped to [0, 1] first (NaN and -inf become 0, +inf 255: count
    them with :func:`nonfinite_pixels` before, they are not real results)."""
    tensor = tensor.detach().cpu().nan_to_num(nan=0.0, posinf=1.0, neginf=0.0)
    return tensor2img(tensor.clamp(0, 1), rgb2bgr=True, min_max=(0, 1))


def nonfinite_pixels(tensor):
    """How many pixels (positions, over all channels) of an image tensor [.., C, H, W] are NaN or infinite."""
    return int((~tensor.detach().isfinite()).any(dim=-3).sum())


def crop_gt_to_sr(gt, sr_size, scale, gt_name='GT', sr_name='SR'):
    """The GT cropped at the bottom/right to the SR size, when it is larger by less than the scale (GT sizes that are
    not a multiple of the scale), as NTIRE does.

    Args:
        gt (ndarray | Tensor): HWC array or [.., C, H, W] tensor.
        sr_size (tuple[int]): (H, W) of the SR image.
        scale (int | None): SR scale; None or 1 requires equal sizes.
        gt_name, sr_name (str): For the error.

    Raises:
        ValueError: naming both when the GT is smaller than the SR image or larger by the scale or more.
    """
    tensor = not isinstance(gt, np.ndarray)
    gt_h, gt_w = gt.shape[-2:] if tensor else gt.shape[:2]
    h, w = sr_size
    margin = scale or 1
    if not (0 <= gt_h - h < margin and 0 <= gt_w - w < margin):
        raise ValueError(f'{gt_name} of shape {tuple(gt.shape)} does not fit {sr_name} of size {w}x{h} (it may be '
                         f'larger by less than the scale {margin}, and is then cropped).')
    return gt[..., :h, :w] if tensor else gt[:h, :w]


NONFINITE_REPORT = 'nonfinite.tsv'


def record_nonfinite(path, pixels):
    """Keeps ``<folder of path>/nonfinite.tsv`` up to date for the image just written to ``path``: listed with its
    count when it had non-finite pixels (written as 0 or 255), unlisted when not. ``srflow-measure`` leaves the
    listed files out and says so."""
    report = osp.join(osp.dirname(path), NONFINITE_REPORT)
    if not pixels and not osp.isfile(report):
        return
    entries = _read_report(report) if osp.isfile(report) else {}
    entries.pop(osp.basename(path), None)
    if pixels:
        entries[osp.basename(path)] = int(pixels)
    if entries:
        with open(report, 'w') as f:
            f.writelines(f'{name}\t{count}\n' for name, count in sorted(entries.items()))
    else:
        os.remove(report)


def _read_report(report):
    entries = {}
    with open(report) as f:
        for line in f:
            name, _, pixels = line.rstrip('\n').rpartition('\t')
            if name:
                entries[name] = int(pixels)
    return entries


def read_nonfinite(folder):
    """{image path: non-finite pixels} from every ``nonfinite.tsv`` under ``folder`` (recursive)."""
    found = {}
    for root, _, files in os.walk(folder):
        if NONFINITE_REPORT in files:
            report = _read_report(osp.join(root, NONFINITE_REPORT))
            found.update({osp.join(root, name): n for name, n in report.items()})
    return found
