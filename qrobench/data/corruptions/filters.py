"""Image filters the corruptions share, on batches (N, H, W[, C]) with numpy and scipy only.

Each stands in for the library call of make_cifar_c.py named in its docstring, with the same
border rule, so a batch gives what the original gives image by image.
"""

from __future__ import annotations

import math
import zlib

import numpy as np
from scipy import ndimage


def image_rngs(seed: int, corruption: str, severity: int, indices: np.ndarray) -> list[np.random.Generator]:
    """One generator per image, from (seed, corruption, severity, test index) alone.

    An image's corruption therefore never depends on which batch it came in or how many
    images were asked for.
    """
    tag = zlib.crc32(corruption.encode())
    return [np.random.default_rng([int(seed), tag, int(severity), int(i)]) for i in indices]


def spatial_sigma(x: np.ndarray, sigma: float) -> tuple[float, ...]:
    """sigma on the two image axes (1 and 2) of a batch, none on the batch or channel axes."""
    return (0.0, sigma, sigma) + (0.0,) * (x.ndim - 3)


def gaussian(x: np.ndarray, sigma: float, mode: str = "nearest", truncate: float = 4.0) -> np.ndarray:
    """skimage.filters.gaussian (defaults: border 'nearest', 4 sigma) on each image of a batch."""
    return ndimage.gaussian_filter(x, spatial_sigma(x, sigma), mode=mode, truncate=truncate)


def _linear_resize(x: np.ndarray, axis: int, size: int) -> np.ndarray:
    """scipy.ndimage.zoom's order-1 resampling along one axis (end points aligned, grid_mode off)."""
    length = x.shape[axis]
    coords = np.arange(size) * ((length - 1) / (size - 1) if size > 1 else 0.0)
    low = np.clip(np.floor(coords).astype(np.int64), 0, max(length - 2, 0))
    frac = coords - low
    high = np.minimum(low + 1, length - 1)
    shape = [1] * x.ndim
    shape[axis] = size
    frac = frac.reshape(shape).astype(x.dtype)
    return np.take(x, low, axis=axis) * (1 - frac) + np.take(x, high, axis=axis) * frac


def clipped_zoom(x: np.ndarray, factor: float) -> np.ndarray:
    """Zoom each image's central ceil(32/factor) square by ``factor`` (bilinear), cut back to 32.

    Bilinear zoom is separable, so two 1-D passes give ndimage.zoom(order=1)'s result for
    the whole batch at once (and far faster than it on a 4-D array).
    """
    size = x.shape[1]
    crop = int(np.ceil(size / factor))
    top = (size - crop) // 2
    out_size = int(round(crop * factor))
    zoomed = x[:, top:top + crop, top:top + crop]
    zoomed = _linear_resize(_linear_resize(zoomed, 1, out_size), 2, out_size)
    trim = (out_size - size) // 2
    return zoomed[:, trim:trim + size, trim:trim + size]


def motion_blur(x: np.ndarray, radius: float, sigma: float, angles: np.ndarray) -> np.ndarray:
    """ImageMagick's MotionBlurImage on each image of a uint8 batch, one angle (degrees) each.

    ImageMagick averages each pixel with the 2 ceil(radius) + 1 pixels behind it along the
    angle, weighted by a one-sided Gaussian exp(-i^2 / 2 sigma^2), reading beyond the border
    as the edge pixel; its 8-bit output is rounded. The same sum in numpy, so no system
    library is needed.
    """
    width = int(2 * math.ceil(radius) + 1)
    taps = np.arange(width)
    weights = np.exp(-(taps ** 2) / (2.0 * sigma ** 2))
    weights /= weights.sum()
    rad = np.deg2rad(np.asarray(angles, dtype=np.float64))[:, None]
    dcol = np.ceil(taps * np.cos(rad) - 0.5).astype(np.int64)  # (N, width)
    drow = np.ceil(taps * np.sin(rad) - 0.5).astype(np.int64)
    n, h, w = x.shape[:3]
    pad = ((0, 0), (width, width), (width, width)) + ((0, 0),) * (x.ndim - 3)
    padded = np.pad(x.astype(np.float64), pad, mode="edge")
    batch = np.arange(n)[:, None, None]
    out = np.zeros(x.shape, dtype=np.float64)
    for i in range(width):
        rows = (width + np.arange(h))[None, :] + drow[:, i:i + 1]  # (N, H)
        cols = (width + np.arange(w))[None, :] + dcol[:, i:i + 1]  # (N, W)
        out += weights[i] * padded[batch, rows[:, :, None], cols[:, None, :]]
    return np.clip(np.rint(out), 0, 255)
