"""CIFAR-10 loading with a fixed order of sources, so every run says where its points came from.

Order: an explicit directory (``--data-dir`` / ``QROBENCH_DATA``), torchvision's download,
then the first 1,000 test images bundled inside the package. Test points are always the
first ``n`` in the original order (RobustBench convention), so runs at equal ``n`` compare.
"""

from __future__ import annotations

import os
import pickle
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np
import torch

from ..errors import DataError

CIFAR10_CLASSES = (
    "airplane", "automobile", "bird", "cat", "deer",
    "dog", "frog", "horse", "ship", "truck",
)
BUNDLED_FILE = "cifar10_test_first1000.npz"
ENV_VAR = "QROBENCH_DATA"


@dataclass
class EvalData:
    """Images as float32 NCHW in [0, 1], labels as int64, and a description of the source."""

    x: torch.Tensor
    y: torch.Tensor
    source: str

    def __len__(self) -> int:
        return len(self.y)


def _default_download_root() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "qrobench" / "data"


def _candidate_dirs(data_dir: str | os.PathLike | None) -> list[Path]:
    if data_dir is not None:
        return [Path(data_dir)]
    env = os.environ.get(ENV_VAR)
    return [Path(env)] if env else []


def _read_npz_split(root: Path, split: str):
    """The offline npz export (``cifar10/cifar10_{split}.npz``), in either root or root/cifar10."""
    for d in (root / "cifar10", root):
        f = d / f"cifar10_{split}.npz"
        if f.is_file():
            with np.load(f, allow_pickle=False) as z:
                return z[f"x_{split}"], z[f"y_{split}"], f"npz:{f}"
    return None


def _read_torchvision_split(root: Path, split: str):
    """torchvision's ``cifar-10-batches-py`` pickles (trusted: standard dataset layout)."""
    for d in (root / "cifar-10-batches-py", root):
        names = ["test_batch"] if split == "test" else [f"data_batch_{i}" for i in range(1, 6)]
        files = [d / n for n in names]
        if all(f.is_file() for f in files):
            xs, ys = [], []
            for f in files:
                with open(f, "rb") as fh:
                    entry = pickle.load(fh, encoding="latin1")
                xs.append(np.asarray(entry["data"], dtype=np.uint8).reshape(-1, 3, 32, 32))
                ys.append(np.asarray(entry.get("labels", entry.get("fine_labels"))))
            x = np.concatenate(xs).transpose(0, 2, 3, 1)
            return x, np.concatenate(ys), f"torchvision-pickles:{d}"
    return None


def _read_dir(root: Path, split: str):
    return _read_npz_split(root, split) or _read_torchvision_split(root, split)


def _download(split: str):
    """torchvision's download path, for users with internet; returns None when offline."""
    try:
        from torchvision.datasets import CIFAR10

        root = _default_download_root()
        ds = CIFAR10(root=str(root), train=(split == "train"), download=True)
        return np.asarray(ds.data), np.asarray(ds.targets), f"torchvision-download:{root}"
    except Exception:  # no network, no torchvision, corrupt cache: fall through
        return None


def _bundled():
    ref = resources.files("qrobench.data").joinpath("bundled", BUNDLED_FILE)
    with resources.as_file(ref) as f, np.load(f, allow_pickle=False) as z:
        return z["x_test"], z["y_test"], f"bundled:first-{len(z['y_test'])}-test-images"


def _to_tensors(x: np.ndarray, y: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    xt = torch.from_numpy(np.ascontiguousarray(x)).permute(0, 3, 1, 2).float().div_(255.0)
    return xt.contiguous(), torch.from_numpy(np.asarray(y, dtype=np.int64))


def load_cifar10_test(
    n: int | None = None, data_dir: str | os.PathLike | None = None, *, allow_download: bool = True
) -> EvalData:
    """The first ``n`` CIFAR-10 test images from the first source that has them."""
    if n is not None and n <= 0:
        raise DataError(f"--n must be a positive number of test points, got {n}")
    found = None
    for d in _candidate_dirs(data_dir):
        if not d.exists():
            raise DataError(
                f"data directory {str(d)!r} does not exist; pass --data-dir or set {ENV_VAR} "
                "to a folder holding cifar10/cifar10_test.npz or cifar-10-batches-py/"
            )
        found = _read_dir(d, "test")
        if found is None:
            raise DataError(
                f"no CIFAR-10 test split in {str(d)!r}: expected cifar10_test.npz or "
                "cifar-10-batches-py/test_batch there (or under cifar10/)"
            )
    if found is None and allow_download and not os.environ.get("QROBENCH_OFFLINE"):
        found = _download("test")
    if found is None:
        found = _bundled()
    x, y, source = found
    if n is not None and n > len(y):
        raise DataError(
            f"--n {n} exceeds the {len(y)} test points available from {source}; "
            f"use --n {len(y)} or less, or point --data-dir/{ENV_VAR} at the full CIFAR-10"
        )
    if n is not None:
        x, y = x[:n], y[:n]
    xt, yt = _to_tensors(x, y)
    return EvalData(xt, yt, source)


def load_cifar10_train(data_dir: str | os.PathLike | None = None) -> EvalData:
    """The full training split (no bundled fallback: training needs the real data)."""
    for d in _candidate_dirs(data_dir):
        found = _read_dir(d, "train")
        if found is not None:
            return EvalData(*_to_tensors(found[0], found[1]), found[2])
    found = _download("train")
    if found is None:
        raise DataError(
            f"no CIFAR-10 training split found; pass --data-dir or set {ENV_VAR} to a folder "
            "holding cifar10/cifar10_train.npz or cifar-10-batches-py/"
        )
    return EvalData(*_to_tensors(found[0], found[1]), found[2])
