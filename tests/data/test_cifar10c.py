"""The official CIFAR-10-C layout, on small arrays made here: severities in equal blocks."""

import numpy as np
import pytest

from qrobench.data.cifar10c import find_cifar10c, load_cifar10c
from qrobench.errors import QrobenchError


@pytest.fixture
def folder(tmp_path):
    d = tmp_path / "CIFAR-10-C"
    d.mkdir()
    block = 8
    images = np.zeros((5 * block, 32, 32, 3), np.uint8)
    for s in range(5):  # pixel value = 10 * severity + index, so a test can tell the rows apart
        for i in range(block):
            images[s * block + i] = 10 * (s + 1) + i
    np.save(d / "gaussian_noise.npy", images)
    np.save(d / "labels.npy", np.tile(np.arange(block) % 10, 5))
    return tmp_path


def test_severities_are_blocks_in_test_order(folder):
    assert find_cifar10c(folder) == folder / "CIFAR-10-C"
    d = load_cifar10c("gaussian_noise", 3, n=4, data_dir=folder)
    assert d.x.shape == (4, 3, 32, 32) and d.y.tolist() == [0, 1, 2, 3]
    assert [round(float(v) * 255) for v in d.x[:, 0, 0, 0]] == [30, 31, 32, 33]
    assert "official arrays" in d.source and "severity 3" in d.source
    assert len(load_cifar10c("gaussian_noise", 5, data_dir=folder)) == 8  # one block by default


def test_bad_input_is_refused_in_one_line(folder, tmp_path):
    for args, match in [(("fog_x", 1), "unknown corruption"), (("gaussian_noise", 6), "severity must be 1-5"),
                        (("fog", 1), "missing"), (("gaussian_noise", 1, 9), "between 1 and the 8")]:
        with pytest.raises(QrobenchError, match=match):
            load_cifar10c(*args, data_dir=folder)
    with pytest.raises(QrobenchError, match="no CIFAR-10-C folder"):
        load_cifar10c("gaussian_noise", 1, data_dir=tmp_path / "nowhere")
    np.save(folder / "CIFAR-10-C" / "labels.npy", np.zeros(7, np.int64))
    with pytest.raises(QrobenchError, match="same number"):
        load_cifar10c("gaussian_noise", 1, data_dir=folder)
