"""``qrobench leaderboard``: every format from real result files, order, reported rows, staleness."""

import copy
import json
import re
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from qrobench.cli import main
from qrobench.engine import Result, read_result
from qrobench.engine.results import SeedResult
from qrobench.models import create_model
from qrobench.reports.collect import ResultFile, pick_one, select
from qrobench.reports.leaderboard import build_table, filter_table, sort_table
from qrobench.train.export import export_to_zoo

REPO = Path(__file__).resolve().parents[2]
PUBLISHED = REPO / "results" / "reference" / "published.json"


def _export_zoo(zoo: Path, tiny_trained) -> None:
    export_to_zoo(tiny_trained, "res8-fp", "preact_resnet", {"depth": 8}, "fp", "natural, 3 epochs", {}, zoo)
    q = create_model("preact_resnet", depth=8, precision="4bit")
    q.load_state_dict(tiny_trained.state_dict())
    export_to_zoo(q, "res8-4bit", "preact_resnet", {"depth": 8, "precision": "4bit"}, "4bit",
                  "natural, 3 epochs, post-training 4-bit", {}, zoo)
    torch.manual_seed(0)
    en = create_model("preact_resnet", depth=8, ensemble=2, noise_coef=0.1, precision="tnn")
    export_to_zoo(en, "en8-tnn", "preact_resnet", {"depth": 8, "ensemble": 2, "noise_coef": 0.1,
                                                   "precision": "tnn"}, "tnn", "untrained", {}, zoo)


@pytest.fixture(scope="module")
def workspace(tmp_path_factory, tiny_trained, data_dir):
    """A zoo of three tiny models and their results from real 'qrobench run' calls at ε 2/255 and
    8/255 (the ε list writes one file per ε), plus the repository's published reference rows."""
    root = tmp_path_factory.mktemp("lb")
    zoo, results = root / "zoo", root / "results"
    _export_zoo(zoo, tiny_trained)
    for name in ("res8-fp", "res8-4bit", "en8-tnn"):
        code = main(["run", "--model", name, "--attacks", "fgsm,pgd20", "--n", "20", "--eps", "2/255,8/255",
                     "--zoo-dir", str(zoo), "--data-dir", str(data_dir),
                     "--output", str(results / "zoo" / f"{name}.json"), "--quiet"])
        assert code == 0
    shutil.copytree(PUBLISHED.parent, results / "reference")
    return root


def _copy(workspace, tmp_path) -> tuple[Path, Path]:
    shutil.copytree(workspace, tmp_path / "w")
    return tmp_path / "w" / "zoo", tmp_path / "w" / "results"


def _lb(capsys, results, zoo, *extra):
    code = main(["leaderboard", "--results-dir", str(results), "--zoo-dir", str(zoo), *extra])
    cap = capsys.readouterr()
    return code, cap.out, cap.err


def _snapshot(folder: Path) -> dict:
    return {p: p.read_bytes() for p in sorted(folder.rglob("*.json"))}


def test_eps_list_writes_one_result_per_eps(workspace):
    files = sorted(p.name for p in (workspace / "results" / "zoo").glob("res8-fp*.json"))
    assert files == ["res8-fp__eps2-255.json", "res8-fp__eps8-255.json"]
    r2 = json.loads((workspace / "results" / "zoo" / "res8-fp__eps2-255.json").read_text())
    r8 = json.loads((workspace / "results" / "zoo" / "res8-fp__eps8-255.json").read_text())
    assert r2["eps"] == pytest.approx(2 / 255) and r8["eps"] == pytest.approx(8 / 255)
    assert r2["clean_acc"] == r8["clean_acc"] and r8["robust_acc"]["pgd20"] <= r2["robust_acc"]["pgd20"]


def test_renders_every_format_and_plot(workspace, tmp_path, capsys):
    zoo, results = _copy(workspace, tmp_path)
    before = _snapshot(results)
    out = tmp_path / "site"
    code, stdout, err = _lb(capsys, results, zoo, "--output", str(out), "--eps", "2/255")
    assert code == 0, err
    for ext in ("md", "csv", "json", "html"):
        assert (out / f"leaderboard.{ext}").stat().st_size > 0
    for name in ("robust_vs_bits", "robust_vs_size", "sparsity_by_precision", "robust_vs_eps"):
        assert (out / "plots" / f"{name}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert b"<svg" in (out / "plots" / f"{name}.svg").read_bytes()[:400]
    html = (out / "leaderboard.html").read_text()
    # fgsm + pgd20 only: no row is ranked, so the three models are in the provisional and the full table
    assert "No row is ranked yet" in html and html.count("<tr") == 2 * (1 + 3)
    assert not re.search(r"https?://", html), "the page must not fetch anything"
    assert not re.search(r"<(script|img|link)[^>]+(src|href)=\"(?!data:)", html)
    assert "data:image/png;base64," in html
    csv = pd.read_csv(out / "leaderboard.csv")
    assert list(csv["model"]) == [r["model"] for r in json.loads((out / "leaderboard.json").read_text())["rows"]]
    assert "worst case" in stdout and "res8-4bit" in stdout
    assert _snapshot(results) == before  # results are only read


def test_sorted_by_worst_case_with_reported_rows_marked(workspace, tmp_path, capsys):
    zoo, results = _copy(workspace, tmp_path)
    code, stdout, _ = _lb(capsys, results, zoo, "--no-plots")
    assert code == 0
    lb = json.loads((results / "leaderboard.json").read_text())
    measured = [r for r in lb["rows"] if r["status"] == "measured"]
    reported = [r for r in lb["rows"] if r["status"] == "reported"]
    worst = [r["worst_case_pct"] for r in measured]
    assert worst == sorted(worst, reverse=True)
    assert lb["rows"][: len(measured)] == measured  # reported rows (no worst case) come last
    # fgsm + pgd20 only: every measured row says its worst case lacks AutoAttack, and why that matters,
    # and none is ranked: they are listed as provisional with what they lack
    assert all("no-autoattack" in r["flags"] for r in measured)
    assert [(r["rank"], r["group"], r["ranked"]) for r in measured] == [(None, None, False)] * 3
    assert {r["model"]: r["lacks"] for r in measured} == {"res8-fp": "cw, square, aa", "res8-4bit": "cw, square, aa",
                                                          "en8-tnn": "cw, square, eot-pgd20, aa-rand"}
    text = (results / "leaderboard.md").read_text()
    assert "**no-autoattack**: measured without AutoAttack" in text
    assert text.index("## Provisional") < text.index("| res8-fp ") < text.index("## All columns")
    # the published EnResNet poster numbers, shown as reported, never ranked
    assert {r["model"] for r in reported} == {"ResNet20", "En1ResNet20", "En2ResNet20", "En5ResNet20"}
    en2 = next(r for r in reported if r["model"] == "En2ResNet20")
    assert (en2["clean_pct"], en2["fgsm_pct"], en2["ifgsm20_pct"], en2["cw-paper_pct"]) == (80.34, 57.23, 50.06, 66.47)
    assert all(r["rank"] is None and r["worst_case_pct"] is None and "reported" in r["flags"]
               and r["source"].startswith("reported") for r in reported)
    md = (results / "leaderboard.md").read_text()
    assert "En2ResNet20 (reported)" in md and "not measure them" in md
    assert 'class="reported"' in (results / "leaderboard.html").read_text()


def test_sort_and_filter_options(workspace, tmp_path, capsys):
    zoo, results = _copy(workspace, tmp_path)
    code, _, _ = _lb(capsys, results, zoo, "--no-plots", "--eps", "2/255", "--sort", "size_kb:asc")
    rows = json.loads((results / "leaderboard.json").read_text())["rows"]
    assert code == 0 and [r["size_kb"] for r in rows] == sorted(r["size_kb"] for r in rows)
    assert [r["model"] for r in rows] == ["res8-4bit", "en8-tnn", "res8-fp"]  # en8: two ternary members

    code, _, _ = _lb(capsys, results, zoo, "--no-plots", "--filter", "bits<=4", "--filter", "model~res8")
    rows = json.loads((results / "leaderboard.json").read_text())["rows"]
    assert code == 0 and [r["model"] for r in rows] == ["res8-4bit"]

    code, _, _ = _lb(capsys, results, zoo, "--no-plots", "--filter", "status=reported", "--sort", "clean")
    rows = json.loads((results / "leaderboard.json").read_text())["rows"]
    assert [r["model"] for r in rows] == ["En5ResNet20", "En2ResNet20", "En1ResNet20", "ResNet20"]

    for bad, message in ((["--sort", "speed"], "unknown column 'speed'; valid: rank, group, model"),
                         (["--filter", "bits<<4"], "is numeric"),
                         (["--filter", "bits"], "must look like COLUMN OP VALUE"),
                         (["--sort", "clean:up"], "must be asc or desc")):
        code, _, err = _lb(capsys, results, zoo, "--no-plots", *bad)
        assert code == 2 and message in err and err.count("\n") == 1, bad


def test_stale_and_missing_results_are_reported(workspace, tmp_path, capsys, tiny_trained):
    zoo, results = _copy(workspace, tmp_path)
    torch.manual_seed(3)  # re-export res8-4bit with other weights: its results are now stale
    export_to_zoo(create_model("preact_resnet", depth=8, precision="4bit"), "res8-4bit", "preact_resnet",
                  {"depth": 8, "precision": "4bit"}, "4bit", "retrained", {}, zoo)
    export_to_zoo(tiny_trained, "res8-new", "preact_resnet", {"depth": 8}, "fp", "natural", {}, zoo)
    code, stdout, _ = _lb(capsys, results, zoo, "--no-plots")
    assert code == 0
    summary = json.loads((results / "leaderboard.json").read_text())["summary"]
    assert summary["missing"] == ["res8-new"]
    assert {s["model"] for s in summary["stale"]} == {"res8-4bit"} and len(summary["stale"]) == 2
    assert summary["measured"] == ["en8-tnn", "res8-fp"]
    row = next(r for r in json.loads((results / "leaderboard.json").read_text())["rows"] if r["model"] == "res8-4bit")
    assert "stale" in row["flags"]
    assert "lacking a result at ε = 8/255: res8-new" in stdout and "stale (card sha256 changed" in stdout


def test_pick_one_prefers_fresh_then_more_points_then_bigger_battery(workspace):
    base = json.loads((workspace / "results" / "zoo" / "res8-fp__eps8-255.json").read_text())
    cards = {}
    small = ResultFile(Path("a.json"), Result.from_dict({**base, "n": 10, "timestamp": "2030"}))
    big = ResultFile(Path("b.json"), Result.from_dict({**base, "n": 20, "timestamp": "2020"}))
    assert pick_one([small, big], cards) is big
    one = copy.deepcopy(big)
    one.result.robust_acc = {"pgd20": 0.0}
    assert pick_one([one, big], cards) is big


def test_table_sort_and_filter_are_pure_functions(workspace):
    rs = [ResultFile(p, read_result(p)) for p in sorted((workspace / "results" / "zoo").glob("*.json"))]
    t = build_table(select(rs, {}, 2 / 255), {})
    s = sort_table(t, "clean:asc")
    assert list(s["clean_pct"]) == sorted(t["clean_pct"])
    assert list(filter_table(s, ["precision=tnn"])["model"]) == ["en8-tnn"]
    assert list(t["model"]) == sorted(t["model"])  # the input frame was not reordered


def test_a_broken_result_file_is_named_and_nothing_is_written(workspace, tmp_path, capsys):
    zoo, results = _copy(workspace, tmp_path)
    (results / "runs").mkdir()
    (results / "runs" / "broken.json").write_text("{not json")
    code, _, err = _lb(capsys, results, zoo)
    assert code == 2 and "broken.json is not valid JSON" in err and err.count("\n") == 1
    assert not (results / "leaderboard.md").exists() and not (results / "plots").exists()


def test_rows_short_of_the_protocol_are_named_in_the_runs_summary():
    from pathlib import Path
    from types import SimpleNamespace

    from qrobench.reports.collect import ResultFile
    from qrobench.reports.summary import summarize_runs

    def result(model, n, attacks, stochastic=False, eps=8 / 255, repeats=3):
        return ResultFile(Path(f"zoo/{model}-{n}.json"),
                          Result(model=model, eps=eps, n=n, stochastic=stochastic, card_sha256="a", repeats=repeats,
                                 robust_acc={a: 0.4 for a in attacks}, timestamp="2026-11-24T00:00:00Z"))

    full = ["fgsm", "pgd20", "cw", "square"]
    cards = {m: SimpleNamespace(sha256="a") for m in ("complete", "no-square", "few-points", "en-no-eot",
                                                      "en-complete", "en-one-seed", "en-no-aa")}
    en_full = full + ["eot-pgd20", "aa-rand"]
    cards["no-aa"] = SimpleNamespace(sha256="a")
    results = [result("complete", 1000, full + ["aa", "transfer"]),
               result("no-square", 1000, full[:3] + ["aa"]),
               result("no-aa", 1000, full),
               result("few-points", 500, full + ["aa"]), result("few-points", 1000, full, eps=2 / 255),
               result("en-no-eot", 1000, full, stochastic=True),
               result("en-complete", 1000, en_full, stochastic=True),
               result("en-one-seed", 1000, en_full, stochastic=True, repeats=1)]
    # a randomised row with per-point outcomes, measured at batch 250 on the CPU, lacking aa-rand
    en_no_aa = result("en-no-aa", 1000, en_full[:-1], stochastic=True)
    ok = np.ones(1000, dtype=bool)
    en_no_aa.result.batch_size, en_no_aa.result.device = 250, "cpu"
    en_no_aa.result.per_seed = [SeedResult.from_masks(s, ok, {a: ok for a in en_full[:-1]}) for s in range(3)]
    results.append(en_no_aa)
    s = summarize_runs(results, select(results, cards, 8 / 255), cards)
    assert s.short_of_protocol == [
        {"model": "en-no-aa", "n": 1000, "repeats": None, "missing_attacks": ["aa-rand"], "stochastic": True,
         "outcomes": True, "version": "", "batch_size": 250, "device": "cpu", "file": "zoo/en-no-aa-1000.json"},
        {"model": "en-no-eot", "n": 1000, "repeats": None, "missing_attacks": ["eot-pgd20", "aa-rand"],
         "stochastic": True, "outcomes": False, "version": "", "batch_size": None, "device": "",
         "file": "zoo/en-no-eot-1000.json"},
        {"model": "en-one-seed", "n": 1000, "repeats": 1, "missing_attacks": [], "stochastic": True},
        {"model": "few-points", "n": 500, "repeats": None, "missing_attacks": [], "stochastic": False},
        {"model": "no-aa", "n": 1000, "repeats": None, "missing_attacks": ["aa"], "stochastic": False,
         "outcomes": False, "version": "", "batch_size": None, "device": "", "file": "zoo/no-aa-1000.json"},
        {"model": "no-square", "n": 1000, "repeats": None, "missing_attacks": ["square"], "stochastic": False,
         "outcomes": False, "version": "", "batch_size": None, "device": "", "file": "zoo/no-square-1000.json"}]
    text = "\n".join(s.lines())
    assert "  - few-points: n = 500" in text and "  - no-square: no square (its result" in text
    assert "  - no-aa: no aa (its result (qrobench < 0.2) predates per-point outcomes" in text
    assert "  - en-one-seed: 1 seed of a randomised model (protocol: 3)" in text
    en_line = next(line for line in text.splitlines() if line.startswith("  - en-no-eot"))
    no_aa_line = next(line for line in text.splitlines() if line.startswith("  - no-aa"))
    assert "with 3 seeds" in en_line and "accelerator" in en_line and "accelerator" not in no_aa_line
    assert "complete" not in text.split("less than the leaderboard protocol")[1]
    # its missing attack must run at the row's batch size and device, or it cannot be merged
    assert ("  - en-no-aa: no aa-rand (run `qrobench run --model en-no-aa --attacks aa-rand --batch-size 250 "
            "--device cpu` for each seed") in text
    # a row with per-point outcomes also gets the cheaper way: continue from its own file
    en_no_aa_line = next(line for line in text.splitlines() if line.startswith("  - en-no-aa"))
    assert "`--cascade-from zoo/en-no-aa-1000.json`" in en_no_aa_line and "--cascade-from" not in no_aa_line


def test_svg_plots_are_byte_identical_across_rebuilds(tmp_path):
    from qrobench.reports.plots import _figure, _save

    outs = []
    for i in range(2):
        fig = _figure()
        fig.add_subplot().plot([0, 1], [0, 1])
        outs.append(_save(fig, tmp_path / f"p{i}.svg", "svg").read_bytes())
    assert outs[0] == outs[1]
