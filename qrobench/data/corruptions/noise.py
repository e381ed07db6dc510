"""Noise corruptions: random per pixel, each image drawing from its own generator.

Every function takes uint8 images (N, 32, 32, 3), the severity's parameter ``c`` and one
generator per image, and returns floats in [0, 255] (truncated to uint8 by the caller, as
make_cifar_c.py's ``np.uint8`` does).
"""

from __future__ import annotations

import numpy as np


def _per_image(rngs, draw) -> np.ndarray:
    return np.stack([draw(rng) for rng in rngs])


def gaussian_noise(images: np.ndarray, c: float, rngs) -> np.ndarray:
    x = images / 255.0
    noise = _per_image(rngs, lambda r: r.normal(scale=c, size=x.shape[1:]))
    return np.clip(x + noise, 0, 1) * 255


def shot_noise(images: np.ndarray, c: float, rngs) -> np.ndarray:
    x = images / 255.0
    counts = np.stack([rng.poisson(xi * c) for rng, xi in zip(rngs, x, strict=True)])
    return np.clip(counts / c, 0, 1) * 255


def impulse_noise(images: np.ndarray, c: float, rngs) -> np.ndarray:
    """Salt and pepper (skimage's ``random_noise(mode='s&p')``): a fraction c of the values, half each."""
    x = images / 255.0
    hit = _per_image(rngs, lambda r: r.random(size=x.shape[1:]) < c)
    salt = _per_image(rngs, lambda r: r.random(size=x.shape[1:]) < 0.5)
    return np.where(hit, salt.astype(np.float64), x) * 255


def speckle_noise(images: np.ndarray, c: float, rngs) -> np.ndarray:
    x = images / 255.0
    noise = _per_image(rngs, lambda r: r.normal(scale=c, size=x.shape[1:]))
    return np.clip(x + x * noise, 0, 1) * 255
