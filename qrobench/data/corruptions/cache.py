"""The generated set on disk: one array per (corruption, severity), checked against a manifest.

Layout: ``<cache>/<corruption>_s<severity>.npy`` (uint8, the first n test images, corrupted)
and ``manifest.json`` holding, per array, its sha256 and n, and, for the whole folder, the
generator version, the parameter table's hash, the seed and the numpy/scipy/Pillow versions. A load re-hashes the file; an
array whose hash, version, parameters or seed do not match, or that holds fewer than the n
asked for, is (re)generated, never returned. Writes go to a temporary file renamed into
place, and the manifest is updated under a lock, so parallel runs sharing a cache are safe.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
import warnings
from pathlib import Path

import numpy as np
import torch

from ...errors import QrobenchError
from ..cifar10 import EvalData, load_cifar10_test
from ..cifar10c import BENCHMARK, EXTRA, SEVERITIES
from .apply import check_corruption, corrupt
from .params import GENERATOR_VERSION, params_hash

GENERATED_SOURCE = "CIFAR-10-C-style (generated)"
FOLDER = "CIFAR-10-C-generated"
MANIFEST = "manifest.json"
SEED = 0  # the generated set's seed; a different seed is a different set


def default_cache_dir(data_dir: str | os.PathLike | None = None) -> Path:
    """``$QROBENCH_CACHE/CIFAR-10-C-generated`` when set, else the user cache. Never the data
    folder: it is often shared or read-only (a root process passes a write-permission check on a
    read-only mount), and tests point ``$QROBENCH_CACHE`` at a temporary folder."""
    if os.environ.get("QROBENCH_CACHE"):
        return Path(os.environ["QROBENCH_CACHE"]) / FOLDER
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "qrobench" / FOLDER


def _array_name(corruption: str, severity: int) -> str:
    return f"{corruption}_s{severity}.npy"


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _header() -> dict:
    """What makes two generated sets the same images; the library versions too, since a new
    numpy, scipy or Pillow may change a random stream, a filter or the JPEG encoder."""
    import PIL
    import scipy

    return {"source": GENERATED_SOURCE, "generator_version": GENERATOR_VERSION, "params_hash": params_hash(),
            "seed": SEED, "libraries": {"numpy": np.__version__, "scipy": scipy.__version__,
                                        "pillow": PIL.__version__}}


def _read_manifest(cache: Path) -> dict:
    """The manifest's arrays, or none when it is missing, unreadable or for other settings."""
    try:
        manifest = json.loads((cache / MANIFEST).read_text())
    except (OSError, ValueError):
        return {}
    if not isinstance(manifest, dict) or any(manifest.get(k) != v for k, v in _header().items()):
        return {}
    arrays = manifest.get("arrays")
    return arrays if isinstance(arrays, dict) else {}


@contextlib.contextmanager
def _locked(cache: Path):
    try:
        import fcntl
    except ImportError:  # not POSIX: renames are still atomic, only concurrent manifest edits may race
        yield
        return
    with open(cache / ".lock", "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _write_atomic(path: Path, write) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            write(fh)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def _store(cache: Path, name: str, array: np.ndarray) -> None:
    path = cache / name
    _write_atomic(path, lambda fh: np.save(fh, array, allow_pickle=False))
    entry = {"sha256": _sha256(path), "n": len(array)}
    with _locked(cache):
        arrays = _read_manifest(cache)
        arrays[name] = entry
        manifest = {**_header(), "arrays": arrays,
                    "note": "arrays: the first n CIFAR-10 test images, corrupted; see qrobench.data.corruptions"}
        _write_atomic(cache / MANIFEST, lambda fh: fh.write(json.dumps(manifest, indent=1, sort_keys=True).encode()))


def _cached(cache: Path, name: str) -> np.ndarray | None:
    """The verified cached array, or None (absent, other settings, or failing its checksum)."""
    entry = _read_manifest(cache).get(name)
    path = cache / name
    if not isinstance(entry, dict) or not path.is_file():
        return None
    if _sha256(path) != entry.get("sha256"):
        warnings.warn(f"{path} does not match its checksum in {cache / MANIFEST}; regenerating it", stacklevel=3)
        return None
    array = np.load(path, allow_pickle=False)
    if array.dtype != np.uint8 or array.shape[1:] != (32, 32, 3) or len(array) != entry.get("n"):
        return None
    return array


def _clean_uint8(data: EvalData) -> np.ndarray:
    return (data.x.permute(0, 2, 3, 1).mul(255).round().to(torch.uint8)).numpy()


def _ensure(cache: Path, corruption: str, severity: int, clean: np.ndarray) -> np.ndarray:
    """The corrupted first len(clean) images, from the cache or generated (only the missing tail)."""
    n = len(clean)
    name = _array_name(corruption, severity)
    have = _cached(cache, name)
    if have is not None and len(have) >= n:
        return have[:n]
    start = 0 if have is None else len(have)
    fresh = corrupt(clean[start:], corruption, severity, indices=np.arange(start, n), seed=SEED)
    array = fresh if have is None else np.concatenate([have, fresh])
    _store(cache, name, array)
    return array


def _prepare(n: int | None, data_dir, cache_dir) -> tuple[Path, EvalData]:
    if n is not None and (isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n <= 0):
        raise QrobenchError(f"n must be a positive number of test points, got {n!r}")
    cache = Path(cache_dir) if cache_dir is not None else default_cache_dir(data_dir)
    try:
        cache.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise QrobenchError(f"cannot create the generated-corruptions cache {cache} ({exc.strerror}); "
                            "pass a writable cache_dir") from exc
    if not os.access(cache, os.W_OK):
        raise QrobenchError(f"the generated-corruptions cache {cache} is not writable; pass a writable cache_dir")
    return cache, load_cifar10_test(n, data_dir)


def load_generated(corruption: str, severity: int, n: int | None = None, data_dir: str | os.PathLike | None = None,
                   cache_dir: str | os.PathLike | None = None) -> EvalData:
    """The first ``n`` test points (all of the clean source's when None) of ``corruption`` at
    ``severity``, generated or read from the cache, as float NCHW in [0, 1] with labels."""
    check_corruption(corruption, severity)
    cache, clean = _prepare(n, data_dir, cache_dir)
    images = _ensure(cache, corruption, severity, _clean_uint8(clean))
    x = torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).float().div(255).contiguous()
    source = (f"{GENERATED_SOURCE}: {corruption} severity {severity}, seed {SEED}, generator v{GENERATOR_VERSION} "
              f"(params {params_hash()[:12]}), cache {cache / _array_name(corruption, severity)}; "
              f"clean images {clean.source}")
    return EvalData(x, clean.y.clone(), source)


def generate_set(n: int, data_dir: str | os.PathLike | None = None, cache_dir: str | os.PathLike | None = None,
                 corruptions=BENCHMARK + EXTRA) -> Path:
    """Fill the cache with every severity of ``corruptions`` for the first ``n`` test points."""
    corruptions = (corruptions,) if isinstance(corruptions, str) else tuple(corruptions)
    for corruption in corruptions:
        check_corruption(corruption, 1)
    cache, clean = _prepare(n, data_dir, cache_dir)
    images = _clean_uint8(clean)
    for corruption in corruptions:
        for severity in range(1, SEVERITIES + 1):
            _ensure(cache, corruption, severity, images)
    return cache
