"""Spatter: water drops (severities 1-3) or mud (4-5) on the lens. Same calling convention as noise.py.

The water branch of make_cifar_c.py shades the drops with OpenCV (Canny edges, a distance
transform, histogram equalisation, an emboss kernel). Here each step is its numpy/scipy
equivalent: Sobel + non-maximum suppression + hysteresis for Canny, the exact Euclidean
distance for OpenCV's 5x5-mask approximation, and OpenCV's own equalisation rule. Close in
look, not bit-equal.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from .filters import gaussian

WATER_RGB = np.array([175, 238, 238]) / 255.0  # pale turquoise
MUD_RGB = np.array([63, 42, 20]) / 255.0  # mud brown
EMBOSS = np.array([[-2, -1, 0], [-1, 1, 1], [0, 1, 2]], dtype=np.float64)
TAN_22_5, TAN_67_5 = np.tan(np.deg2rad(22.5)), np.tan(np.deg2rad(67.5))


def canny(img: np.ndarray, low: float, high: float) -> np.ndarray:
    """Edges of a 2-D uint8 image (boolean), OpenCV's rule: L1 Sobel magnitude, thin, hysteresis."""
    f = img.astype(np.float64)
    gx = ndimage.sobel(f, axis=1, mode="nearest")
    gy = ndimage.sobel(f, axis=0, mode="nearest")
    mag = np.abs(gx) + np.abs(gy)
    pad = np.pad(mag, 1)
    h, w = mag.shape

    def at(dr, dc):
        return pad[1 + dr:1 + dr + h, 1 + dc:1 + dc + w]

    ax, ay = np.abs(gx), np.abs(gy)
    horizontal = ay <= ax * TAN_22_5
    vertical = ay > ax * TAN_67_5
    same_sign = gx * gy > 0
    peak = np.select(
        [horizontal, vertical, same_sign],
        [(mag > at(0, -1)) & (mag >= at(0, 1)),
         (mag > at(-1, 0)) & (mag >= at(1, 0)),
         (mag > at(-1, -1)) & (mag >= at(1, 1))],
        default=(mag > at(-1, 1)) & (mag >= at(1, -1)))
    candidate = peak & (mag > low)
    labels, count = ndimage.label(candidate, structure=np.ones((3, 3)))
    strong = np.unique(labels[candidate & (mag > high)])
    return np.isin(labels, strong[strong > 0])


def equalize_hist(img: np.ndarray) -> np.ndarray:
    """OpenCV's equalizeHist: the cumulative histogram above the first used level, scaled to 255."""
    hist = np.bincount(img.ravel(), minlength=256)
    first = int(np.flatnonzero(hist)[0])
    total = img.size
    if hist[first] == total:
        return np.full_like(img, first)
    cdf = np.cumsum(hist) - hist[first]
    lut = np.clip(np.rint(cdf * (255.0 / (total - hist[first]))), 0, 255).astype(np.uint8)
    lut[:first] = 0
    return lut[img]


def water_shading(layer: np.ndarray) -> np.ndarray:
    """How bright each drop pixel is: distance to the drop's edge, equalised and embossed."""
    layer_u8 = (layer * 255).astype(np.uint8)
    edges = canny(layer_u8, 50, 150)
    if edges.any():
        dist = ndimage.distance_transform_edt(~edges)
    else:
        dist = np.full(layer.shape, 20.0)
    dist = np.minimum(dist, 20)
    dist = ndimage.uniform_filter(dist, 3, mode="mirror").astype(np.uint8)
    dist = equalize_hist(dist)
    dist = np.clip(np.rint(ndimage.correlate(dist.astype(np.float64), EMBOSS, mode="mirror")), 0, 255)
    dist = ndimage.uniform_filter(dist, 3, mode="mirror")
    shade = layer_u8 * dist
    top = shade.max()
    return shade / top if top > 0 else shade


def spatter(images: np.ndarray, c: tuple, rngs) -> np.ndarray:
    mean, std, sigma, threshold, intensity, mud = c
    x = images / 255.0
    layers = np.stack([r.normal(loc=mean, scale=std, size=x.shape[1:3]) for r in rngs])
    layers = gaussian(layers, sigma)
    layers[layers < threshold] = 0
    if not mud:
        shade = np.stack([water_shading(layer) for layer in layers]) * intensity
        return np.clip(x + shade[..., None] * WATER_RGB, 0, 1) * 255
    cover = gaussian((layers > threshold).astype(np.float64), intensity)
    cover[cover < 0.8] = 0
    cover = cover[..., None]
    return np.clip(x * (1 - cover) + MUD_RGB * cover, 0, 1) * 255
