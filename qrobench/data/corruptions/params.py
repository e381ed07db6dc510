"""The corruptions' parameters at CIFAR's own scale: one row of five severities per corruption.

Source: Hendrycks & Dietterich, ICLR 2019, the script that made the published CIFAR-10-C,
github.com/hendrycks/robustness, ``ImageNet-C/create_c/make_cifar_c.py`` (each row is that
script's ``c`` list; not the ImageNet-C constants of the ``imagecorruptions`` package, which
are far harsher at 32x32). Changing a number here changes ``params_hash()`` and so
invalidates every cached generated set.
"""

from __future__ import annotations

import hashlib
import json

from ..cifar10c import BENCHMARK, EXTRA, SEVERITIES

# Bump when an algorithm changes in a way that changes the images (the cache keys on it).
GENERATOR_VERSION = 1

PARAMS: dict[str, tuple] = {
    # noise, on x in [0, 1]
    "gaussian_noise": (0.04, 0.06, 0.08, 0.09, 0.10),  # std of additive N(0, c)
    "shot_noise": (500, 250, 100, 75, 50),  # Poisson(x c) / c
    "impulse_noise": (0.01, 0.02, 0.03, 0.05, 0.07),  # salt-and-pepper fraction of values
    "speckle_noise": (0.06, 0.1, 0.12, 0.16, 0.2),  # std of multiplicative x (1 + N(0, c))
    # blur
    "gaussian_blur": (0.4, 0.6, 0.7, 0.8, 1.0),  # Gaussian sigma (pixels)
    "glass_blur": ((0.05, 1, 1), (0.25, 1, 1), (0.4, 1, 1), (0.25, 1, 2), (0.4, 1, 2)),  # sigma, max shift, iterations
    "defocus_blur": ((0.3, 0.4), (0.4, 0.5), (0.5, 0.6), (1, 0.2), (1.5, 0.1)),  # disk radius, alias blur sigma
    "motion_blur": ((6, 1), (6, 1.5), (6, 2), (8, 2), (9, 2.5)),  # ImageMagick radius, sigma
    "zoom_blur": (1.06, 1.11, 1.16, 1.21, 1.26),  # zoom factors 1, 1.01, ... below this bound
    # weather
    "snow": ((0.1, 0.2, 1, 0.6, 8, 3, 0.95),  # flake mean, std, zoom, threshold,
             (0.1, 0.2, 1, 0.5, 10, 4, 0.9),  # motion radius, motion sigma, image weight
             (0.15, 0.3, 1.75, 0.55, 10, 4, 0.9),
             (0.25, 0.3, 2.25, 0.6, 12, 6, 0.85),
             (0.3, 0.3, 1.25, 0.65, 14, 12, 0.8)),
    "frost": ((1, 0.2), (1, 0.3), (0.9, 0.4), (0.85, 0.4), (0.75, 0.45)),  # image weight, frost weight
    "fog": ((0.2, 3), (0.5, 3), (0.75, 2.5), (1, 2), (1.5, 1.75)),  # fog strength, fractal decay
    "spatter": ((0.62, 0.1, 0.7, 0.7, 0.5, 0),  # layer mean, std, blur sigma, threshold,
                (0.65, 0.1, 0.8, 0.7, 0.5, 0),  # intensity (water) / mud blur sigma, 0 water 1 mud
                (0.65, 0.3, 1, 0.69, 0.5, 0),
                (0.65, 0.1, 0.7, 0.69, 0.6, 1),
                (0.65, 0.1, 0.5, 0.68, 0.6, 1)),
    # digital
    "brightness": (0.05, 0.1, 0.15, 0.2, 0.3),  # added to HSV value
    "contrast": (0.75, 0.5, 0.4, 0.3, 0.15),  # factor on the deviation from each channel's mean
    "saturate": ((0.3, 0), (0.1, 0), (1.5, 0), (2, 0.1), (2.5, 0.2)),  # HSV saturation * a + b
    "elastic_transform": ((0, 0, 0.08), (0.05, 0.2, 0.07), (0.08, 0.06, 0.06),  # x 32 pixels: displacement
                          (0.1, 0.04, 0.05), (0.1, 0.03, 0.03)),  # scale, its smoothing sigma, affine jitter
    "pixelate": (0.95, 0.9, 0.85, 0.75, 0.65),  # box-downsample to int(32 c), box-upsample back
    "jpeg_compression": (80, 65, 58, 50, 40),  # JPEG quality
}
assert set(PARAMS) == set(BENCHMARK + EXTRA) and all(len(v) == SEVERITIES for v in PARAMS.values())


def params_hash() -> str:
    """sha256 of the generator version and the whole table: the cache's key for 'same images'."""
    blob = json.dumps({"version": GENERATOR_VERSION, "params": PARAMS}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()
