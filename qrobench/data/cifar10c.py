"""CIFAR-10-C (Hendrycks & Dietterich, ICLR 2019) from its official arrays.

The published layout: ``<data-dir>/CIFAR-10-C/<corruption>.npy``, uint8 images (N, 32, 32, 3)
with the five severities stacked in equal blocks (10,000 each in the release: block s holds
severity s + 1 of the test images in their original order), and ``labels.npy`` with one
label per row. Whenever the folder is there it is used; a machine without the 2.9 GB
download gets nothing from here (a generated set is a separate, labelled source).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

from ..errors import QrobenchError
from .cifar10 import EvalData, _candidate_dirs

FOLDER = "CIFAR-10-C"
BENCHMARK = ("gaussian_noise", "shot_noise", "impulse_noise", "defocus_blur", "glass_blur", "motion_blur",
             "zoom_blur", "snow", "frost", "fog", "brightness", "contrast", "elastic_transform", "pixelate",
             "jpeg_compression")  # the 15 of RobustBench's corruptions track
EXTRA = ("speckle_noise", "gaussian_blur", "spatter", "saturate")
SEVERITIES = 5
SOURCE = "CIFAR-10-C (official arrays)"


def find_cifar10c(data_dir: str | os.PathLike | None = None) -> Path | None:
    """The official CIFAR-10-C folder under ``data_dir`` (or ``$QROBENCH_DATA``), if present."""
    for root in _candidate_dirs(data_dir):
        for d in (root / FOLDER, root):
            if (d / "labels.npy").is_file() and any((d / f"{c}.npy").is_file() for c in BENCHMARK + EXTRA):
                return d
    return None


def load_cifar10c(corruption: str, severity: int, n: int | None = None,
                  data_dir: str | os.PathLike | None = None) -> EvalData:
    """The first ``n`` test points of ``corruption`` at ``severity`` (1-5), as float NCHW in [0, 1]."""
    if corruption not in BENCHMARK + EXTRA:
        raise QrobenchError(f"unknown corruption {corruption!r}; CIFAR-10-C has {', '.join(BENCHMARK + EXTRA)}")
    if severity not in range(1, SEVERITIES + 1):
        raise QrobenchError(f"severity must be 1-{SEVERITIES}, got {severity!r}")
    root = find_cifar10c(data_dir)
    if root is None:
        where = ", ".join(str(d) for d in _candidate_dirs(data_dir)) or "no --data-dir or $QROBENCH_DATA"
        raise QrobenchError(f"no CIFAR-10-C folder ({FOLDER}/labels.npy and <corruption>.npy) under {where}; "
                            "download the official release into <data-dir>/CIFAR-10-C")
    path = root / f"{corruption}.npy"
    if not path.is_file():
        raise QrobenchError(f"{path} is missing from the CIFAR-10-C folder {root}")
    images = np.load(path, mmap_mode="r", allow_pickle=False)
    labels = np.load(root / "labels.npy", mmap_mode="r", allow_pickle=False)
    if images.ndim != 4 or images.shape[1:] != (32, 32, 3) or images.dtype != np.uint8:
        raise QrobenchError(f"{path} holds {images.dtype} {tuple(images.shape)}, not uint8 (N, 32, 32, 3) images")
    if len(images) != len(labels) or len(images) % SEVERITIES:
        raise QrobenchError(f"{path} has {len(images)} images and labels.npy {len(labels)} labels; both must be "
                            f"the same number, {SEVERITIES} equal blocks of severities")
    block = len(images) // SEVERITIES
    n = block if n is None else n
    if not 0 < n <= block:
        raise QrobenchError(f"n = {n} must be between 1 and the {block} images of one severity")
    start = (severity - 1) * block
    # a copy: torch refuses to share a read-only memory map's pages
    x = torch.from_numpy(np.array(images[start:start + n])).permute(0, 3, 1, 2).float().div(255)
    y = torch.from_numpy(np.asarray(labels[start:start + n]).astype(np.int64))
    return EvalData(x, y, f"{SOURCE}: {path} severity {severity}")
