"""Digital corruptions: colour, contrast, geometry, resampling, compression.

Same calling convention as noise.py. The HSV conversions are matplotlib's (the same formulas
as skimage's rgb2hsv / hsv2rgb that make_cifar_c.py uses); resampling and JPEG are Pillow's,
as in the original.
"""

from __future__ import annotations

import io

import numpy as np
from scipy import ndimage


def _hsv_shift(images: np.ndarray, channel: int, scale: float, shift: float) -> np.ndarray:
    from matplotlib.colors import hsv_to_rgb, rgb_to_hsv

    hsv = rgb_to_hsv(images / 255.0)
    hsv[..., channel] = np.clip(hsv[..., channel] * scale + shift, 0, 1)
    return np.clip(hsv_to_rgb(hsv), 0, 1) * 255


def brightness(images: np.ndarray, c: float, rngs) -> np.ndarray:
    return _hsv_shift(images, 2, 1.0, c)


def saturate(images: np.ndarray, c: tuple, rngs) -> np.ndarray:
    return _hsv_shift(images, 1, c[0], c[1])


def contrast(images: np.ndarray, c: float, rngs) -> np.ndarray:
    x = images / 255.0
    means = x.mean(axis=(1, 2), keepdims=True)
    return np.clip((x - means) * c + means, 0, 1) * 255


def _affine_jitter(rng: np.random.Generator, size: int, jitter: float) -> tuple[np.ndarray, np.ndarray]:
    """A random affine map (OpenCV's getAffineTransform of three jittered points), returned
    inverted in (row, col) coordinates: source = matrix @ destination + offset."""
    centre, arm = size // 2, size // 3
    src = np.array([[centre + arm, centre + arm], [centre + arm, centre - arm], [centre - arm, centre - arm]],
                   dtype=np.float64)  # (x, y) points as in the original
    dst = src + rng.uniform(-jitter, jitter, size=src.shape).astype(np.float32)
    forward = np.linalg.solve(np.c_[src, np.ones(3)], dst).T  # 2x3, x-y order: dst = A src + b
    inverse = np.linalg.inv(forward[:, :2])
    swap = np.array([[0, 1], [1, 0]])  # (x, y) <-> (row, col)
    matrix = swap @ inverse @ swap
    offset = -(swap @ inverse @ forward[:, 2])
    return matrix, offset


def elastic_transform(images: np.ndarray, c: tuple, rngs) -> np.ndarray:
    """A random affine warp (reflect-101 border), then a smooth random displacement field."""
    size = images.shape[1]
    scale, smooth, jitter = (v * size for v in c)
    out = np.empty(images.shape, dtype=np.float64)
    rows, cols = np.meshgrid(np.arange(size), np.arange(size), indexing="ij")
    for k, (rng, img) in enumerate(zip(rngs, images, strict=True)):
        x = (img / 255.0).astype(np.float32)
        matrix, offset = _affine_jitter(rng, size, jitter)
        warped = np.stack([ndimage.affine_transform(x[..., ch], matrix, offset, order=1, mode="mirror")
                           for ch in range(x.shape[2])], axis=-1)
        dx = ndimage.gaussian_filter(rng.uniform(-1, 1, size=(size, size)), smooth, mode="reflect", truncate=3) * scale
        dy = ndimage.gaussian_filter(rng.uniform(-1, 1, size=(size, size)), smooth, mode="reflect", truncate=3) * scale
        coords = [(rows + dy).ravel(), (cols + dx).ravel()]
        out[k] = np.stack([ndimage.map_coordinates(warped[..., ch], coords, order=1, mode="reflect")
                           .reshape(size, size) for ch in range(x.shape[2])], axis=-1)
    return np.clip(out, 0, 1) * 255


def pixelate(images: np.ndarray, c: float, rngs) -> np.ndarray:
    """Box-downsample to int(32 c) pixels a side and box-upsample back (Pillow)."""
    from PIL import Image

    size = images.shape[1]
    small = int(size * c)
    box = Image.Resampling.BOX
    return np.stack([np.asarray(Image.fromarray(img).resize((small, small), box).resize((size, size), box))
                     for img in images])


def jpeg_compression(images: np.ndarray, c: int, rngs) -> np.ndarray:
    """Pillow's JPEG encoder at quality c, decoded again."""
    from PIL import Image

    out = []
    for img in images:
        buffer = io.BytesIO()
        Image.fromarray(img).save(buffer, "JPEG", quality=int(c))
        out.append(np.asarray(Image.open(buffer).convert("RGB")))
    return np.stack(out)
