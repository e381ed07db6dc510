"""The CIFAR-10-C-style generator: shapes, seeding, severity order, noise scale, cache, label.

A comparison with the published CIFAR-10-C arrays cannot be made here (they are not on this
machine, and the generator's random draws differ from theirs by design).
"""

import json

import numpy as np
import pytest

from qrobench.data import load_cifar10_test
from qrobench.data.corruptions import (
    BENCHMARK,
    CORRUPTIONS,
    EXTRA,
    GENERATED_SOURCE,
    cache,
    corrupt,
    generate_set,
    load_generated,
)
from qrobench.errors import QrobenchError

DETERMINISTIC = {"gaussian_blur", "defocus_blur", "zoom_blur", "brightness", "contrast", "saturate",
                 "pixelate", "jpeg_compression"}


@pytest.fixture(scope="module")
def images():
    """Eight CIFAR-10 test images as uint8 NHWC (the bundled subset: no data folder needed)."""
    data = load_cifar10_test(8, None, allow_download=False)
    return (data.x.permute(0, 2, 3, 1).numpy() * 255).round().astype(np.uint8)


@pytest.fixture
def offline(monkeypatch):
    monkeypatch.setenv("QROBENCH_OFFLINE", "1")
    monkeypatch.delenv("QROBENCH_DATA", raising=False)


def test_nineteen_corruptions():
    assert set(CORRUPTIONS) == set(BENCHMARK + EXTRA) and len(CORRUPTIONS) == 19


@pytest.mark.parametrize("name", BENCHMARK + EXTRA)
def test_each_corruption_is_seeded_per_image(name, images):
    x = images[:4]
    for severity in (2, 5):  # spatter: water at 2, mud at 5
        out = corrupt(x, name, severity, indices=np.array([10, 11, 12, 13]), seed=3)
        assert out.dtype == np.uint8 and out.shape == x.shape
        assert not np.array_equal(out, x)
        again = corrupt(x, name, severity, indices=np.array([10, 11, 12, 13]), seed=3)
        np.testing.assert_array_equal(out, again)
        alone = corrupt(x[2:3], name, severity, indices=np.array([12]), seed=3)  # batch of one
        np.testing.assert_array_equal(alone, out[2:3])
        shuffled = corrupt(x[::-1], name, severity, indices=np.array([13, 12, 11, 10]), seed=3)
        np.testing.assert_array_equal(shuffled, out[::-1])
    if name not in DETERMINISTIC:
        assert not np.array_equal(corrupt(x, name, 5, indices=np.array([10, 11, 12, 13]), seed=4), out)
        assert not np.array_equal(corrupt(x, name, 5, indices=np.array([20, 21, 22, 23]), seed=3), out)


@pytest.mark.parametrize("name", ["gaussian_noise", "shot_noise", "impulse_noise", "speckle_noise",
                                  "gaussian_blur", "defocus_blur", "motion_blur", "zoom_blur", "contrast"])
def test_higher_severity_changes_the_image_more(name, images):
    change = [np.abs(corrupt(images, name, s).astype(float) - images).mean() for s in range(1, 6)]
    assert all(b > a - 0.25 for a, b in zip(change[:-1], change[1:], strict=True)), change  # 0.25 of 255: motion blur's angles
    assert change[-1] > 1.5 * change[0], change


def test_gaussian_noise_has_the_cifar_sigma():
    grey = np.full((16, 32, 32, 3), 128, np.uint8)
    for severity, sigma in ((1, 0.04), (5, 0.10)):
        noise = (corrupt(grey, "gaussian_noise", severity).astype(float) - 128) / 255
        assert abs(noise.std() / sigma - 1) < 0.05, (severity, noise.std())


def test_bad_names_are_refused_with_the_valid_ones(images):
    with pytest.raises(QrobenchError, match="unknown corruption 'fogg'; valid: gaussian_noise"):
        corrupt(images, "fogg", 1)
    with pytest.raises(QrobenchError, match="severity must be one of 1-5"):
        corrupt(images, "fog", 6)
    with pytest.raises(QrobenchError, match="uint8 images"):
        corrupt(images.astype(np.float32), "fog", 1)
    with pytest.raises(QrobenchError, match="unknown corruption"):
        load_generated("snowy", 1, n=2)


def test_cache_round_trips_extends_and_catches_tampering(images, tmp_path, offline, monkeypatch):
    first = load_generated("fog", 2, n=5, cache_dir=tmp_path)
    assert first.source.startswith(GENERATED_SOURCE) and "fog severity 2" in first.source
    expected = corrupt(images, "fog", 2)
    np.testing.assert_array_equal((first.x.permute(0, 2, 3, 1).numpy() * 255).round(), expected[:5])
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert manifest["source"] == GENERATED_SOURCE and manifest["arrays"]["fog_s2.npy"]["n"] == 5
    assert manifest["params_hash"] and manifest["generator_version"] >= 1

    def refuse(*args, **kwargs):
        raise AssertionError("regenerated although the cache holds the images")

    monkeypatch.setattr(cache, "corrupt", refuse)
    again = load_generated("fog", 2, n=3, cache_dir=tmp_path)
    assert np.array_equal(again.x, first.x[:3]) and again.y.tolist() == first.y[:3].tolist()
    monkeypatch.undo()
    monkeypatch.setenv("QROBENCH_OFFLINE", "1")
    monkeypatch.delenv("QROBENCH_DATA", raising=False)

    more = load_generated("fog", 2, n=8, cache_dir=tmp_path)  # only images 5..7 are new
    np.testing.assert_array_equal((more.x.permute(0, 2, 3, 1).numpy() * 255).round(), expected)

    path = tmp_path / "fog_s2.npy"
    raw = bytearray(path.read_bytes())
    raw[-1] ^= 0xFF
    path.write_bytes(bytes(raw))
    with pytest.warns(UserWarning, match="checksum"):
        healed = load_generated("fog", 2, n=8, cache_dir=tmp_path)
    assert np.array_equal(healed.x, more.x)
    assert np.array_equal(np.load(path), expected)

    manifest = json.loads((tmp_path / "manifest.json").read_text())
    manifest["params_hash"] = "0" * 64  # a set made with other parameters is not reused
    (tmp_path / "manifest.json").write_text(json.dumps(manifest))
    calls = []
    monkeypatch.setattr(cache, "corrupt", lambda *a, **k: calls.append(a) or corrupt(*a, **k))
    load_generated("fog", 2, n=8, cache_dir=tmp_path)
    assert len(calls) == 1 and len(calls[0][0]) == 8


def test_generate_set_fills_every_severity(tmp_path, offline):
    where = generate_set(2, cache_dir=tmp_path, corruptions=("contrast",))
    assert where == tmp_path
    arrays = json.loads((tmp_path / "manifest.json").read_text())["arrays"]
    assert sorted(arrays) == [f"contrast_s{s}.npy" for s in range(1, 6)]
