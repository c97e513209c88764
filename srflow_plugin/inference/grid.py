"""Labelled picture grids: every tile gets a caption band above it, so a saved grid explains itself.

Layout (all in pixels): tiles of ``tile_h x tile_w`` (the largest picture; smaller ones are placed at the top
left of their cell), each with a caption band of ``label_height(tile_w)`` rows above it, separated and framed by
``GAP`` pixels of background. Row r, column c has its picture at
``(GAP + r * (label_h + tile_h + GAP) + label_h, GAP + c * (tile_w + GAP))`` (see ``tile_origin``).
"""
from typing import Sequence, Tuple

import cv2
import numpy as np

__all__ = ['GAP', 'BACKGROUND', 'label_height', 'tile_origin', 'make_grid', 'nearest_upscale', 'bicubic_upscale']

GAP = 4
BACKGROUND = 255
_FONT = cv2.FONT_HERSHEY_SIMPLEX


def _font_scale(tile_w):
    return float(np.clip(tile_w / 320, 0.3, 0.8))


def label_height(tile_w: int) -> int:
    """Height of the caption band above each tile of width ``tile_w``."""
    (_, text_h), baseline = cv2.getTextSize('Tg', _FONT, _font_scale(tile_w), 1)
    return text_h + baseline + 6


def tile_origin(row: int, col: int, tile_h: int, tile_w: int) -> Tuple[int, int]:
    """(y, x) of the top-left pixel of the picture in cell (row, col)."""
    label_h = label_height(tile_w)
    return GAP + row * (label_h + tile_h + GAP) + label_h, GAP + col * (tile_w + GAP)


def _fit_text(text, tile_w, scale):
    while text and cv2.getTextSize(text, _FONT, scale, 1)[0][0] > tile_w - 4:
        text = text[:-1]
    return text


def make_grid(rows: Sequence[Sequence[Tuple[str, np.ndarray]]]) -> np.ndarray:
    """Arranges labelled pictures in rows.

    Args:
        rows (list[list[tuple[str, ndarray]]]): Per row, (caption, HWC uint8 BGR picture) pairs; rows may have
            different lengths (missing cells stay background).

    Returns:
        ndarray: The grid, HWC uint8 BGR, of height ``GAP + n_rows * (label_h + tile_h + GAP)`` and width
        ``GAP + n_cols * (tile_w + GAP)``.
    """
    cells = [img for row in rows for _, img in row]
    if not cells:
        raise ValueError('make_grid needs at least one picture')
    for img in cells:
        if img.ndim != 3 or img.shape[2] != 3 or img.dtype != np.uint8:
            raise ValueError(f'grid pictures must be HWC uint8 with 3 channels, got {img.shape} {img.dtype}')
    tile_h, tile_w = max(i.shape[0] for i in cells), max(i.shape[1] for i in cells)
    n_cols = max(len(row) for row in rows)
    label_h = label_height(tile_w)
    grid = np.full((GAP + len(rows) * (label_h + tile_h + GAP), GAP + n_cols * (tile_w + GAP), 3), BACKGROUND,
                   np.uint8)
    scale = _font_scale(tile_w)
    for r, row in enumerate(rows):
        for c, (caption, img) in enumerate(row):
            y, x = tile_origin(r, c, tile_h, tile_w)
            grid[y:y + img.shape[0], x:x + img.shape[1]] = img
            cv2.putText(grid, _fit_text(caption, tile_w, scale), (x + 2, y - 5), _FONT, scale, (0, 0, 0), 1,
                        cv2.LINE_AA)
    return grid


def nearest_upscale(img: np.ndarray, scale: int) -> np.ndarray:
    """Each LR pixel as a scale x scale block (shows the input as the network sees it)."""
    return cv2.resize(img, (img.shape[1] * scale, img.shape[0] * scale), interpolation=cv2.INTER_NEAREST)


def bicubic_upscale(img: np.ndarray, scale: int) -> np.ndarray:
    """Bicubic interpolation (cv2), the classic non-learned baseline."""
    return cv2.resize(img, (img.shape[1] * scale, img.shape[0] * scale), interpolation=cv2.INTER_CUBIC)
