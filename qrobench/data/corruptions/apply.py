"""The dispatcher: a corruption's name and severity to its function, parameters and per-image seeds."""

from __future__ import annotations

import numpy as np

from ...errors import QrobenchError
from ..cifar10c import BENCHMARK, EXTRA, SEVERITIES
from . import blur, digital, noise, spatter, weather
from .filters import image_rngs
from .params import PARAMS

CORRUPTIONS = {
    "gaussian_noise": noise.gaussian_noise, "shot_noise": noise.shot_noise,
    "impulse_noise": noise.impulse_noise, "speckle_noise": noise.speckle_noise,
    "defocus_blur": blur.defocus_blur, "glass_blur": blur.glass_blur, "motion_blur": blur.motion_blur,
    "zoom_blur": blur.zoom_blur, "gaussian_blur": blur.gaussian_blur,
    "snow": weather.snow, "frost": weather.frost, "fog": weather.fog, "spatter": spatter.spatter,
    "brightness": digital.brightness, "contrast": digital.contrast, "saturate": digital.saturate,
    "elastic_transform": digital.elastic_transform, "pixelate": digital.pixelate,
    "jpeg_compression": digital.jpeg_compression,
}
assert set(CORRUPTIONS) == set(PARAMS)


def check_corruption(corruption: str, severity: int) -> None:
    """A one-line QrobenchError naming the valid choices when either is unknown."""
    if corruption not in CORRUPTIONS:
        raise QrobenchError(f"unknown corruption {corruption!r}; valid: {', '.join(BENCHMARK + EXTRA)}")
    if isinstance(severity, bool) or severity not in range(1, SEVERITIES + 1):
        raise QrobenchError(f"severity must be one of 1-{SEVERITIES}, got {severity!r}")


def corrupt(images: np.ndarray, corruption: str, severity: int, *, indices: np.ndarray | None = None,
            seed: int = 0) -> np.ndarray:
    """``corruption`` at ``severity`` on uint8 images (N, 32, 32, 3); ``indices``: their test indices."""
    check_corruption(corruption, severity)
    images = np.asarray(images)
    if images.dtype != np.uint8 or images.ndim != 4 or images.shape[1:] != (32, 32, 3):
        raise QrobenchError(f"corrupt() takes uint8 images (N, 32, 32, 3), got {images.dtype} {images.shape}")
    indices = np.arange(len(images)) if indices is None else np.asarray(indices)
    if indices.shape != (len(images),):
        raise QrobenchError(f"indices must give one test index per image ({len(images)}), got shape {indices.shape}")
    if len(images) == 0:
        return images.copy()
    rngs = image_rngs(seed, corruption, severity, indices)
    out = CORRUPTIONS[corruption](images, PARAMS[corruption][severity - 1], rngs)
    return np.clip(out, 0, 255).astype(np.uint8)  # truncation, as make_cifar_c.py's np.uint8
