"""Blur corruptions. Same calling convention as noise.py (uint8 in, floats in [0, 255] out)."""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from .filters import clipped_zoom, gaussian
from .filters import motion_blur as magick_motion_blur


def gaussian_blur(images: np.ndarray, c: float, rngs) -> np.ndarray:
    return np.clip(gaussian(images / 255.0, c), 0, 1) * 255


def glass_blur(images: np.ndarray, c: tuple, rngs) -> np.ndarray:
    """Blur, move pixels locally, blur again.

    make_cifar_c.py visits pixels (h, w) for h, w = 31 down to 2 and writes
    ``x[h, w], x[h', w'] = x[h', w'], x[h, w]`` with (h', w') = (h, w) + a draw from {-1, 0}^2.
    On numpy views that statement copies x[h', w'] into x[h, w] and leaves x[h', w'] as it was
    (the tuple holds views, not copies): the published images duplicate pixels rather than
    swap them, and so does this. Every source (h', w') comes later in the visiting order, so it
    still holds its value from before the pass: one pass is one vectorised gather.
    """
    sigma, max_delta, iterations = c
    x = (gaussian(images / 255.0, sigma) * 255).astype(np.uint8)
    size = x.shape[1]
    span = np.arange(size - max_delta, max_delta, -1)  # the visited rows (and columns), in order
    moves = np.stack([r.integers(-max_delta, max_delta, size=(iterations, len(span), len(span), 2)) for r in rngs])
    batch = np.arange(len(x))[:, None, None]
    for it in range(iterations):
        dcol, drow = moves[:, it, ..., 0], moves[:, it, ..., 1]
        rows = span[None, :, None] + drow
        cols = span[None, None, :] + dcol
        x[:, span[:, None], span[None, :]] = x[batch, rows, cols]
    return np.clip(gaussian(x / 255.0, sigma), 0, 1) * 255


def disk_kernel(radius: float, alias_blur: float) -> np.ndarray:
    """make_cifar_c.py's ``disk``: a normalised disk on a 17x17 grid, smoothed by a 3x3 Gaussian.

    OpenCV's 3x3 GaussianBlur with reflect-101 borders; the all-zero rim is cut off (it adds
    nothing to the correlation).
    """
    half = 8 if radius <= 8 else int(radius)
    grid = np.arange(-half, half + 1)
    rr, cc = np.meshgrid(grid, grid, indexing="ij")
    disk = (rr ** 2 + cc ** 2 <= radius ** 2).astype(np.float64)
    disk /= disk.sum()
    taps = np.exp(-np.array([1.0, 0.0, 1.0]) / (2 * alias_blur ** 2))
    taps /= taps.sum()
    kernel = ndimage.correlate1d(ndimage.correlate1d(disk, taps, axis=0, mode="mirror"), taps, axis=1, mode="mirror")
    keep = int(np.floor(radius)) + 1
    return kernel[half - keep:half + keep + 1, half - keep:half + keep + 1]


def defocus_blur(images: np.ndarray, c: tuple, rngs) -> np.ndarray:
    """Each channel correlated with the disk, OpenCV filter2D's reflect-101 border (scipy 'mirror')."""
    kernel = disk_kernel(*c)
    out = ndimage.correlate(images / 255.0, kernel[None, :, :, None], mode="mirror")
    return np.clip(out, 0, 1) * 255


def motion_blur(images: np.ndarray, c: tuple, rngs) -> np.ndarray:
    radius, sigma = c
    angles = np.array([r.uniform(-45, 45) for r in rngs])
    return magick_motion_blur(images, radius, sigma, angles)


def zoom_blur(images: np.ndarray, c: float, rngs) -> np.ndarray:
    """The mean of the image and its zooms by 1, 1.01, ... up to (not including) ``c``."""
    factors = np.arange(1, c, 0.01)
    x = (images / 255.0).astype(np.float32)
    total = x.copy()
    for factor in factors:
        total += clipped_zoom(x, factor)
    return np.clip(total / (len(factors) + 1), 0, 1) * 255
