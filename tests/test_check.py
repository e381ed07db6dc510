"""``qrobench check`` and ``qrobench.testing.assert_robust``: regressions are caught, no false alarms."""

import dataclasses
import json

import pytest
import torch

from qrobench.check import CHECK_ATTACKS, CHECK_N, CHECK_SEED, SETTINGS_CHANGED, CheckRow, compare
from qrobench.cli import main
from qrobench.engine import Result
from qrobench.engine.results import SHARED_SCORE_DRAW
from qrobench.errors import QrobenchError
from qrobench.models import create_model
from qrobench.testing import assert_robust
from qrobench.train.export import export_to_zoo

SMALL_EPS = "2/255"  # at 8/255 a tiny naturally trained model is at 0 %, so nothing could regress


@pytest.fixture
def zoo(tmp_path, tiny_trained):
    d = tmp_path / "zoo"
    export_to_zoo(tiny_trained, "res8-fp", "preact_resnet", {"depth": 8}, "fp", "natural, 3 epochs",
                  {"command": "tests/conftest.py::tiny_trained"}, d)
    return d


def _check(capsys, zoo, results, data_dir, *extra):
    code = main(["check", "--zoo-dir", str(zoo), "--results-dir", str(results), "--data-dir", str(data_dir),
                 "--quiet", *extra])
    cap = capsys.readouterr()
    return code, cap.out, cap.err


def _baseline(capsys, zoo, results, data_dir):
    code, out, err = _check(capsys, zoo, results, data_dir, "--update", "--models", "res8-fp", "--n", "40",
                            "--eps", SMALL_EPS, "--attacks", "fgsm,pgd20")
    assert code == 0, err
    return json.loads((results / "check" / "res8-fp.json").read_text())


def test_unchanged_model_passes_and_a_swapped_checkpoint_fails(zoo, tmp_path, data_dir, capsys):
    results = tmp_path / "results"
    base = _baseline(capsys, zoo, results, data_dir)
    assert base["protocol"] == {"name": "check", "n": 40, "eps": pytest.approx(2 / 255), "seed": 0,
                                "attacks": ["fgsm", "pgd20"], "repeats": 1}
    assert base["command"].startswith("qrobench check ") and "--update" in base["command"]  # what wrote it
    assert base["robust_acc"]["pgd20"] >= 0.1  # there is robustness to lose

    code, out, _ = _check(capsys, zoo, results, data_dir)
    assert code == 0 and "OK" in out and "REGRESSED" not in out and "+0.00" in out

    # plant the regression: an untrained model under the same name (the card hash is updated,
    # so the zoo loads it without complaint; only the numbers can tell)
    torch.manual_seed(1)
    export_to_zoo(create_model("preact_resnet", depth=8), "res8-fp", "preact_resnet", {"depth": 8}, "fp",
                  "natural, 3 epochs", {}, zoo)
    code, out, _ = _check(capsys, zoo, results, data_dir, "--tolerance", "2")
    assert code == 1
    assert "REGRESSED" in out and "FAIL" in out and "changed" in out
    row = next(line for line in out.splitlines() if "| pgd20" in line)
    assert "REGRESSED" in row
    # the baseline is untouched by a failing check
    assert json.loads((results / "check" / "res8-fp.json").read_text()) == base

    # a tolerance wider than the loss lets it pass (the tolerance really is the threshold)
    code, out, _ = _check(capsys, zoo, results, data_dir, "--tolerance", "100")
    assert code == 0


def test_check_errors_exit_2_in_one_line(zoo, tmp_path, data_dir, capsys):
    results = tmp_path / "results"
    code, _, err = _check(capsys, zoo, results, data_dir)
    assert code == 2 and "no baselines" in err and err.count("\n") == 1
    code, _, err = _check(capsys, zoo, results, data_dir, "--n", "10")
    assert code == 2 and "only apply with --update" in err
    code, _, err = _check(capsys, zoo, results, data_dir, "--models", "nope")
    assert code == 2 and "unknown model 'nope'" in err
    code, _, err = _check(capsys, zoo, results, data_dir, "--models", "res8-fp")
    assert code == 2 and "no baseline for 'res8-fp'" in err


def test_compare_flags_only_drops_beyond_tolerance():
    stored = Result(model="m", card_sha256="a", clean_acc=0.50, robust_acc={"pgd20": 0.30, "fgsm": 0.4},
                    worst_case_acc=0.30)
    measured = dataclasses.replace(stored, clean_acc=0.49, robust_acc={"pgd20": 0.25, "fgsm": 0.45},
                                   worst_case_acc=0.25)
    rows = {r.metric: r for r in compare(stored, measured, tolerance_pp=2.0)}
    assert rows["clean"].status == "ok"  # -1 pp
    assert rows["pgd20"].status == "REGRESSED" and rows["pgd20"].delta_pp == pytest.approx(-5)
    assert rows["fgsm"].status == "improved" and rows["worst case"].status == "REGRESSED"
    assert all(isinstance(r, CheckRow) and r.checkpoint == "same" for r in rows.values())


def test_compare_gives_no_verdict_where_the_attack_settings_changed():
    first = {"steps": 20, "returns": "first misclassified iterate, else last"}
    stored = Result(model="m", card_sha256="a", clean_acc=0.50, robust_acc={"pgd20": 0.45, "fgsm": 0.4},
                    worst_case_acc=0.40, attacks={"pgd20": first, "fgsm": {"steps": 1}})
    measured = dataclasses.replace(stored, robust_acc={"pgd20": 0.35, "fgsm": 0.4}, worst_case_acc=0.35,
                                   attacks={"pgd20": {**first, "returns": "last iterate"}, "fgsm": {"steps": 1}})
    rows = {r.metric: r for r in compare(stored, measured, tolerance_pp=2.0)}
    assert rows["pgd20"].status == SETTINGS_CHANGED and rows["worst case"].status == SETTINGS_CHANGED
    assert rows["fgsm"].status == "ok" and rows["clean"].status == "ok"
    same = {r.metric: r for r in compare(stored, dataclasses.replace(measured, attacks=stored.attacks), 2.0)}
    assert same["pgd20"].status == "REGRESSED"  # the same settings: a drop is a regression
    # a randomised baseline scored under a draw per column vs a run under the shared draw (§6.4)
    rescored = dataclasses.replace(measured, attacks=stored.attacks, stochastic=True, score_draw=SHARED_SCORE_DRAW)
    rows = {r.metric: r for r in compare(dataclasses.replace(stored, stochastic=True), rescored, 2.0)}
    assert {m: r.status for m, r in rows.items()} == {"clean": "ok", "pgd20": SETTINGS_CHANGED,
                                                       "fgsm": SETTINGS_CHANGED, "worst case": SETTINGS_CHANGED}


def test_default_protocol_is_fixed():
    assert (CHECK_N, CHECK_SEED, CHECK_ATTACKS) == (200, 0, ("pgd20",))


def test_assert_robust_passes_and_fails_readably(tiny_trained, test_points):
    r = assert_robust(tiny_trained, attack="pgd20", min_acc=0.05, n=40, eps=2 / 255, data=test_points)
    assert r.robust_acc["pgd20"] >= 0.05
    with pytest.raises(AssertionError) as e:
        assert_robust(tiny_trained, attack="pgd20", min_acc=0.90, n=40, eps=2 / 255, data=test_points)
    msg = str(e.value)
    for part in ("not robust enough", "pgd20 accuracy", "required 90.00 %", "n = 40", "ε = 2/255", "seed 0",
                 "clean accuracy"):
        assert part in msg, part
    with pytest.raises(QrobenchError, match="did you mean 0.4"):
        assert_robust(tiny_trained, min_acc=40, n=10, data=test_points)
