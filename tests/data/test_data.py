import pickle

import numpy as np
import pytest
import torch

from qrobench.data.cifar10 import load_cifar10_test
from qrobench.errors import DataError


def test_npz_source_gives_first_n_in_order(data_dir):
    d = load_cifar10_test(50, data_dir)
    z = np.load(data_dir / "cifar10" / "cifar10_test.npz")
    assert d.source.startswith("npz:")
    assert d.x.shape == (50, 3, 32, 32) and d.x.dtype == torch.float32
    assert 0.0 <= float(d.x.min()) and float(d.x.max()) <= 1.0
    assert torch.equal(d.y, torch.from_numpy(z["y_test"][:50]))
    assert torch.equal((d.x * 255).round().to(torch.uint8).permute(0, 2, 3, 1),
                       torch.from_numpy(z["x_test"][:50]))


def test_bundled_subset_matches_the_full_test_set(data_dir, monkeypatch):
    monkeypatch.delenv("QROBENCH_DATA", raising=False)
    monkeypatch.setenv("QROBENCH_OFFLINE", "1")
    b = load_cifar10_test(1000)
    full = load_cifar10_test(1000, data_dir)
    assert b.source.startswith("bundled")
    assert torch.equal(b.x, full.x) and torch.equal(b.y, full.y)
    with pytest.raises(DataError, match="exceeds the 1000 test points"):
        load_cifar10_test(1001)


def test_torchvision_pickle_folder_is_read(tmp_path, data_dir):
    z = np.load(data_dir / "cifar10" / "cifar10_test.npz")
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    x = z["x_test"][:20].transpose(0, 3, 1, 2).reshape(20, 3072)
    with open(folder / "test_batch", "wb") as f:
        pickle.dump({"data": x, "labels": z["y_test"][:20].tolist()}, f)
    d = load_cifar10_test(20, tmp_path)
    assert d.source.startswith("torchvision-pickles")
    assert torch.equal(d.x, load_cifar10_test(20, data_dir).x)


def test_env_var_is_used(data_dir, monkeypatch):
    monkeypatch.setenv("QROBENCH_DATA", str(data_dir))
    assert load_cifar10_test(5).source.startswith("npz:")


def test_bad_inputs(tmp_path, data_dir):
    with pytest.raises(DataError, match="does not exist"):
        load_cifar10_test(10, tmp_path / "missing")
    with pytest.raises(DataError, match="no CIFAR-10 test split"):
        load_cifar10_test(10, tmp_path)
    with pytest.raises(DataError, match="exceeds the 10000"):
        load_cifar10_test(10001, data_dir)
    with pytest.raises(DataError, match="positive"):
        load_cifar10_test(0, data_dir)
