"""Common corruptions on a small fake CIFAR-10-C folder made here: the headline is the mean of the
per-(corruption, severity) accuracies, an exact model scores 1, a constant one its class
frequency, the record names its threat model and source, round-trips, merges and resumes."""

import json
import statistics

import numpy as np
import pytest
import torch
import torch.nn as nn

from qrobench.cli import main
from qrobench.data.cifar10 import EvalData
from qrobench.data.cifar10c import SOURCE
from qrobench.engine.journal import Journal
from qrobench.engine.merge import merge_results
from qrobench.engine.outcomes import encode_mask
from qrobench.engine.results import read_result, write_result
from qrobench.errors import QrobenchError
from qrobench.models.noise import FeynmanKacNoise
from qrobench.threats.corruptions import column_name, evaluate_corruptions, load_corrupted

BLOCK = 20
CORRUPTIONS = ("gaussian_noise", "fog")
LABELS = torch.from_numpy(np.random.default_rng(0).integers(0, 10, BLOCK))


def damaged(c: int, severity: int) -> int:
    """Points whose image reads as the wrong label in column (corruption index c, severity)."""
    return (severity - 1) * 2 + c  # 0..9 of the 20


def encode(labels) -> np.ndarray:
    """Images whose first pixel is 20 × label, which the label reader decodes."""
    img = np.zeros((len(labels), 32, 32, 3), np.uint8)
    img[:, 0, 0, 0] = 20 * np.asarray(labels)
    return img


class LabelReader(nn.Module):
    """Reads the label off the first pixel: exact on undamaged images."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 1, 1)  # gives the weight statistics something to measure

    def forward(self, x):
        return nn.functional.one_hot((x[:, 0, 0, 0] * 255 / 20).round().long() % 10, 10).float()


class Constant(nn.Module):
    def __init__(self, k: int):
        super().__init__()
        self.k = k

    def forward(self, x):
        return nn.functional.one_hot(torch.full((len(x),), self.k), 10).float()


def make_folder(root, labels=LABELS, damage=True):
    d = root / "CIFAR-10-C"
    d.mkdir(parents=True)
    for c, name in enumerate(CORRUPTIONS):
        blocks = []
        for s in range(1, 6):
            shown = labels.clone()
            k = damaged(c, s) if damage else 0
            shown[:k] = (shown[:k] + 1) % 10
            blocks.append(encode(shown))
        np.save(d / f"{name}.npy", np.concatenate(blocks))
    np.save(d / "labels.npy", np.tile(np.asarray(labels), 5))
    return root


@pytest.fixture
def folder(tmp_path):
    return make_folder(tmp_path / "damaged")


CLEAN = EvalData(torch.from_numpy(encode(LABELS)).permute(0, 3, 1, 2).float() / 255, LABELS, "fake clean")


def run(model, data_dir, **kw):
    return evaluate_corruptions(model, BLOCK, corruptions=kw.pop("corruptions", CORRUPTIONS), data_dir=data_dir,
                                clean=CLEAN, batch_size=7, **kw)


def test_the_mean_is_the_mean_of_the_cells_and_each_cell_is_plain_accuracy(folder):
    r = run(LabelReader(), folder)
    assert r.threat_model == "corruptions" and r.clean_acc == 1.0 and len(r.robust_acc) == 10
    for c, name in enumerate(CORRUPTIONS):
        for s in range(1, 6):
            assert r.robust_acc[column_name(name, s)] == 1 - damaged(c, s) / BLOCK
    assert r.corruptions["mean"] == pytest.approx(statistics.fmean(r.robust_acc.values()), abs=1e-12)
    assert r.corruptions["per_corruption"]["fog"] == pytest.approx(statistics.fmean(
        1 - damaged(1, s) / BLOCK for s in range(1, 6)))
    assert r.corruptions["per_severity"]["5"] == pytest.approx(1 - (8 + 9) / 2 / BLOCK)
    # worst case: clean and every column; fog@5 damages the first 9 points, the most of any column
    assert r.worst_case_acc == 1 - 9 / BLOCK and "not ANDed with clean" in r.corruptions["metric"]


def test_an_exact_model_scores_one_and_a_constant_one_its_class_frequency(tmp_path):
    clean_folder = make_folder(tmp_path, damage=False)
    assert run(LabelReader(), clean_folder).corruptions["mean"] == 1.0
    k = min(LABELS.unique().tolist(), key=lambda c: int((LABELS == c).sum()))  # a rare class, present
    r = run(Constant(k), clean_folder)
    freq = int((LABELS == k).sum()) / BLOCK
    assert 0 < freq < 0.2
    assert all(a == freq for a in r.robust_acc.values()) and r.corruptions["mean"] == pytest.approx(freq)
    assert "low-clean-accuracy" in r.flags  # a constant model is no model


def test_columns_not_anded_with_clean(tmp_path):
    """A model wrong on the clean images may be right on the corrupted ones: that counts."""
    r = evaluate_corruptions(LabelReader(), BLOCK, corruptions=("fog",), severities=(1,),
                             data_dir=make_folder(tmp_path, damage=False), batch_size=7,
                             clean=EvalData(CLEAN.x * 0, LABELS, "blank clean"))
    assert r.clean_acc == int((LABELS == 0).sum()) / BLOCK < 1 and r.robust_acc["fog@1"] == 1.0


def test_the_record_names_its_source_round_trips_and_merges(folder, tmp_path):
    r = run(LabelReader(), folder)
    assert r.data_source.startswith(SOURCE) and "fake clean" in r.data_source
    assert {s["source"] for s in r.attacks.values()} == {SOURCE}
    assert r.attacks["fog@2"] == {**r.attacks["fog@2"], "corruption": "fog", "severity": 2}
    back = read_result(write_result(r, tmp_path / "c.json"))
    assert back.to_dict() == r.to_dict() and back.corruptions == r.corruptions and r.corruptions["source"] == SOURCE
    assert [m.tolist() for m in back.masks("gaussian_noise@3")] == [[i >= 4 for i in range(BLOCK)]]
    # two runs over different corruptions merge into the run over both
    parts = [write_result(run(LabelReader(), folder, corruptions=(c,)), tmp_path / f"{c}.json") for c in CORRUPTIONS]
    merged = merge_results(parts)
    assert merged.corruptions["mean"] == pytest.approx(r.corruptions["mean"])
    assert merged.robust_acc == r.robust_acc and merged.worst_case_acc == r.worst_case_acc


def test_a_journaled_column_is_read_back_not_rerun(folder, tmp_path):
    path = tmp_path / "c.json.journal"
    j = Journal(path, {"run": 1})
    j.record(0, "fog@5", 0, encode_mask(np.ones(BLOCK, bool)), 1000.0)  # as if already scored, all right
    j.close()
    j = Journal(path, {"run": 1}, resume=True)
    r = run(LabelReader(), folder, journal=j)
    j.close()
    assert r.robust_acc["fog@5"] == 1.0 and r.robust_acc["fog@4"] == 1 - damaged(1, 4) / BLOCK
    assert 1000.0 <= r.total_time_s < 1000.0 + 600  # the killed process's column counts in the record's cost


class NoisyReader(LabelReader):
    """The label reader behind test-time noise on its logits: a randomised model."""

    def __init__(self):
        super().__init__()
        self.noise = FeynmanKacNoise(3.0)

    def forward(self, x):
        return self.noise(super().forward(x))


def test_a_randomised_model_gets_three_seeds_and_each_column_its_own_noise(folder):
    full = run(NoisyReader(), folder)
    assert full.stochastic and full.seeds == [0, 1, 2] and full.std.robust_acc["fog@1"] > 0
    assert [s.outcomes for s in run(NoisyReader(), folder).per_seed] == [s.outcomes for s in full.per_seed]
    alone = run(NoisyReader(), folder, corruptions=("fog",))  # a column's noise does not depend on the others
    assert [s.outcomes["fog@3"] for s in alone.per_seed] == [s.outcomes["fog@3"] for s in full.per_seed]
    assert full.corruptions["mean_std"] > 0


def test_bad_requests_are_one_line_errors(folder, tmp_path):
    with pytest.raises(QrobenchError, match="unknown corruption.*'gaussian_noize'"):
        run(LabelReader(), folder, corruptions=("gaussian_noize",))
    with pytest.raises(QrobenchError, match="severities are distinct levels 1-5"):
        run(LabelReader(), folder, severities=(0, 1))
    with pytest.raises(QrobenchError, match="motion_blur.npy is missing"):
        run(LabelReader(), folder, corruptions=("motion_blur",))
    with pytest.raises(QrobenchError, match="labels of .* differ from the clean test labels"):
        evaluate_corruptions(LabelReader(), BLOCK, corruptions=("fog",), data_dir=folder,
                             clean=EvalData(CLEAN.x, (LABELS + 1) % 10, "shifted"))
    with pytest.raises(QrobenchError, match="corruption source must be one of"):
        load_corrupted("fog", 1, 5, folder, source="mine")


def real_data(tmp_path, data_dir):
    """A data folder holding the real CIFAR-10 (linked), and its first BLOCK test labels."""
    root = tmp_path / "data"
    root.mkdir()
    (root / "cifar10").symlink_to(data_dir / "cifar10")
    with np.load(data_dir / "cifar10" / "cifar10_test.npz") as z:
        return root, torch.from_numpy(z["y_test"][:BLOCK].astype(np.int64))


@pytest.fixture
def data_with_c(tmp_path, data_dir):
    """The real CIFAR-10 next to a fake CIFAR-10-C whose labels are the real first BLOCK."""
    return make_folder(*real_data(tmp_path, data_dir))


def test_cli_writes_the_record_and_the_leaderboard_keeps_it_apart(tiny_zoo, data_with_c, tmp_path, capsys):
    res = tmp_path / "results"
    out = res / "threats" / "corruptions" / "res8-fp.json"
    assert main(["run", "--model", "res8-fp", "--threat-model", "corruptions", "--corruptions", "fog",
                 "--n", str(BLOCK), "--zoo-dir", str(tiny_zoo), "--data-dir", str(data_with_c),
                 "--output", str(out), "--quiet"]) == 0
    d = json.loads(out.read_text())
    assert d["threat_model"] == "corruptions" and list(d["attacks"]) == [f"fog@{s}" for s in range(1, 6)]
    assert d["corruptions"]["columns"] == 5 and d["data_source"].startswith(SOURCE)
    assert not out.with_name(out.name + ".journal").exists()
    assert "mean over 5 corruption columns" in capsys.readouterr().out
    assert main(["run", "--model", "res8-fp", "--attacks", "fgsm", "--n", str(BLOCK), "--zoo-dir", str(tiny_zoo),
                 "--data-dir", str(data_with_c), "--output", str(res / "zoo" / "res8-fp.json"), "--quiet"]) == 0
    assert main(["leaderboard", "--results-dir", str(res), "--zoo-dir", str(tiny_zoo), "--no-plots"]) == 0
    lb = json.loads((res / "leaderboard.json").read_text())
    assert [r["model"] for r in lb["rows"]] == ["res8-fp"]  # the corruption record is no rival ε result


@pytest.mark.parametrize("argv, words", [
    (["--threat-model", "corruptions", "--attacks", "pgd20"], "runs no input attacks; drop --attacks"),
    (["--threat-model", "corruptions", "--eps", "8/255", "--patterns", "3"], "drop --eps, --patterns"),
    (["--threat-model", "corruptions", "--corruptions", "fog,nope"], "unknown corruption(s) 'nope'"),
    (["--corruptions", "fog"], "belong to --threat-model corruptions"),
    (["--threat-model", "bit-errors", "--corruption-source", "official"], "belong to --threat-model corruptions"),
])
def test_cli_refusals(argv, words, tmp_path, capsys):
    assert main(["run", "--model", "res8-fp", *argv, "--output", str(tmp_path / "x.json")]) == 2
    err = capsys.readouterr().err
    assert words in err and err.count("\n") == 1 and not (tmp_path / "x.json").exists()


def test_without_the_official_folder_the_generated_set_is_used_and_named(tmp_path, data_dir):
    generated = pytest.importorskip("qrobench.data.corruptions")
    root, labels = real_data(tmp_path, data_dir)
    k = int(labels[0])
    r = evaluate_corruptions(Constant(k), BLOCK, corruptions=("brightness",), severities=(1, 5), data_dir=root)
    assert r.data_source.startswith(generated.GENERATED_SOURCE)
    assert {a["source"] for a in r.attacks.values()} == {generated.GENERATED_SOURCE}
    assert r.corruptions["mean"] == int((labels == k).sum()) / BLOCK  # the generated labels are the test labels
    assert r.attacks["brightness@5"]["data"].startswith(f"{generated.GENERATED_SOURCE}: brightness severity 5")
    with pytest.raises(QrobenchError, match="no CIFAR-10-C folder"):
        load_corrupted("brightness", 1, BLOCK, root, source="official")
