"""Weather corruptions: snow, frost, fog. Same calling convention as noise.py."""

from __future__ import annotations

from functools import lru_cache
from importlib import resources

import numpy as np

from .filters import clipped_zoom, motion_blur

FROST_FILE = "frost.npz"  # see frost/NOTICE: origin, licence, how it was reduced


@lru_cache(maxsize=1)
def frost_layers() -> tuple[np.ndarray, ...]:
    """The five frost overlays, already at make_cifar_c.py's 0.2 scale, RGB uint8."""
    ref = resources.files(__package__).joinpath("frost").joinpath(FROST_FILE)
    with resources.as_file(ref) as path, np.load(path, allow_pickle=False) as z:
        return tuple(z[f"frost{i}"] for i in range(1, 6))


def frost(images: np.ndarray, c: tuple, rngs) -> np.ndarray:
    """A random 32x32 crop of one of five frost pictures, blended in: c0 x + c1 frost."""
    layers = frost_layers()
    crops = []
    for rng in rngs:
        layer = layers[rng.integers(len(layers))]
        top = rng.integers(0, layer.shape[0] - 32)
        left = rng.integers(0, layer.shape[1] - 32)
        crops.append(layer[top:top + 32, left:left + 32])
    return np.clip(c[0] * images.astype(np.float64) + c[1] * np.stack(crops), 0, 255)


def plasma_fractal(rng: np.random.Generator, size: int = 32, decay: float = 3.0) -> np.ndarray:
    """A diamond-square height map in [0, 1] (the fractal behind make_cifar_c.py's fog).

    Squares then diamonds at ever finer steps; each new point is the quarter-sum of its four
    neighbours (wrapping round) plus uniform noise whose range shrinks by ``decay`` a step.
    """
    height = np.zeros((size, size))
    step, amp = size, 100.0

    def noisy_mean(total):
        return total / 4 + amp * rng.uniform(-amp, amp, total.shape)

    while step >= 2:
        half = step // 2
        corners = height[0:size:step, 0:size:step]
        square = corners + np.roll(corners, -1, axis=0)
        square = square + np.roll(square, -1, axis=1)
        height[half:size:step, half:size:step] = noisy_mean(square)
        centres = height[half:size:step, half:size:step]
        corners = height[0:size:step, 0:size:step]
        across = centres + np.roll(centres, 1, axis=0) + corners + np.roll(corners, -1, axis=1)
        height[0:size:step, half:size:step] = noisy_mean(across)
        down = centres + np.roll(centres, 1, axis=1) + corners + np.roll(corners, -1, axis=0)
        height[half:size:step, 0:size:step] = noisy_mean(down)
        step //= 2
        amp /= decay
    height -= height.min()
    return height / height.max()


def fog(images: np.ndarray, c: tuple, rngs) -> np.ndarray:
    strength, decay = c
    x = images / 255.0
    peak = x.max(axis=(1, 2, 3), keepdims=True)
    haze = np.stack([plasma_fractal(r, 32, decay) for r in rngs])[..., None]
    return np.clip((x + strength * haze) * peak / (peak + strength), 0, 1) * 255


def snow(images: np.ndarray, c: tuple, rngs) -> np.ndarray:
    """Flakes: thresholded, zoomed Gaussian noise, motion-blurred downwards, added twice (once
    turned 180 degrees) to an image brightened towards its grey level."""
    mean, std, zoom, threshold, radius, sigma, keep = c
    x = images / 255.0
    flakes = np.stack([r.normal(loc=mean, scale=std, size=x.shape[1:3]) for r in rngs])
    angles = np.array([r.uniform(-135, -45) for r in rngs])
    flakes = clipped_zoom(flakes[..., None], zoom)[..., 0]
    flakes[flakes < threshold] = 0
    flakes = (np.clip(flakes, 0, 1) * 255).astype(np.uint8)  # the 8-bit picture ImageMagick blurs
    flakes = (motion_blur(flakes, radius, sigma, angles) / 255.0)[..., None]
    grey = (x @ np.array([0.299, 0.587, 0.114]))[..., None]
    x = keep * x + (1 - keep) * np.maximum(x, grey * 1.5 + 0.5)
    return np.clip(x + flakes + np.rot90(flakes, k=2, axes=(1, 2)), 0, 1) * 255
