"""qrobench sweep, qrobench weights and the Findings the leaderboard generates from them."""

import json

import numpy as np
import pytest

from qrobench.cli import main
from qrobench.engine.results import Result, SeedResult, read_result, write_result
from qrobench.reports.build import write_leaderboard
from qrobench.reports.studies import _lgmp_finding, _sensitivity_finding


def test_sweep_writes_one_result_per_point_and_keeps_finished_ones(tiny_zoo, data_dir, tmp_path, capsys):
    out = tmp_path / "sweeps" / "res8-fp"
    argv = ["sweep", "res8-fp", "--bits", "2,4", "--method", "uniform,lgmp", "--attacks", "fgsm", "--n", "24",
            "--zoo-dir", str(tiny_zoo), "--data-dir", str(data_dir), "--output-dir", str(out), "--quiet"]
    assert main(argv) == 0
    files = sorted(p.name for p in out.glob("*.json"))
    assert files == ["res8-fp__float.json", "res8-fp__lgmp-2bit.json", "res8-fp__lgmp-4bit.json",
                     "res8-fp__uniform-2bit.json", "res8-fp__uniform-4bit.json"]
    assert not list(out.glob("*.journal"))
    u2, fl = read_result(out / "res8-fp__uniform-2bit.json"), read_result(out / "res8-fp__float.json")
    assert u2.sweep["method"] == "uniform" and u2.sweep["source"] == "res8-fp" and u2.bits == 2
    assert u2.model == "res8-fp:uniform-2bit" and u2.precision == "2bit" and "sweep res8-fp" in u2.command
    assert fl.sweep["method"] == "float" and fl.bits == 32 and u2.sparsity > 0.3  # 2-bit zeroes small weights
    lg = read_result(out / "res8-fp__lgmp-4bit.json")
    assert lg.precision == "mixed" and lg.sweep["avg_bits"] <= 4
    before = {p: p.stat().st_mtime_ns for p in out.glob("*.json")}
    assert main(argv) == 0  # nothing to do: every point is kept
    assert {p: p.stat().st_mtime_ns for p in out.glob("*.json")} == before
    assert "kept" in capsys.readouterr().err


def test_a_corruptions_sweep_writes_its_own_points_beside_the_linf_ones(tiny_zoo, data_dir, tmp_path):
    """RobustMQ's claims compare both threat models on the same post-training points (issue #26)."""
    out = tmp_path / "sweeps" / "res8-fp"
    argv = ["sweep", "res8-fp", "--bits", "2", "--method", "uniform", "--n", "16", "--zoo-dir", str(tiny_zoo),
            "--data-dir", str(data_dir), "--output-dir", str(out), "--quiet", "--threat-model", "corruptions"]
    assert main(argv) == 0
    assert sorted(p.name for p in out.glob("*.json")) == ["res8-fp__float__corruptions.json",
                                                          "res8-fp__uniform-2bit__corruptions.json"]
    r = read_result(out / "res8-fp__uniform-2bit__corruptions.json")
    assert r.threat_model == "corruptions" and r.sweep["bits_budget"] == 2 and r.n == 16
    assert len(r.attacks) == 75 and 0 <= r.corruptions["mean"] <= 1
    assert main([*argv, "--attacks", "pgd20"]) == 2  # no attacks under corruptions


@pytest.mark.parametrize("args,message", [(["--bits", "2,9"], "supports 1..8"),
                                          (["--method", "kmeans"], "choose from uniform, lgmp"),
                                          (["--bits", "2,x"], "whole numbers")])
def test_bad_sweeps_are_refused(tiny_zoo, tmp_path, capsys, args, message):
    assert main(["sweep", "res8-fp", "--zoo-dir", str(tiny_zoo), "--output-dir", str(tmp_path), *args]) == 2
    assert message in capsys.readouterr().err


def test_a_quantized_model_cannot_be_swept(tiny_zoo, tmp_path, capsys):
    assert main(["sweep", "en8-tnn", "--zoo-dir", str(tiny_zoo), "--output-dir", str(tmp_path)]) == 2
    assert "a sweep quantizes a float model" in capsys.readouterr().err


def _point(source, method, bits, clean, robust, n=400, layer_bits=None):
    rng = np.random.default_rng(bits * 7 + len(method))
    c = np.zeros(n, bool)
    c[rng.permutation(n)[: int(clean * n)]] = True
    r = c.copy()
    r[np.flatnonzero(c)[int(robust * n):]] = False
    res = Result(model=f"{source}:{method}-{bits}bit", n=n, attacks={"pgd20": {}},
                 per_seed=[SeedResult.from_masks(0, c, {"pgd20": r})],
                 sweep={"source": source, "method": method, "bits_budget": bits, "avg_bits": float(bits),
                        "layer_bits": layer_bits or {"l": bits if method == "uniform" else -bits}})
    return res.summarize()


def _sweep(source, clean_by_bits, robust_by_bits, method="uniform"):
    pts = [_point(source, "float", 32, clean_by_bits[32], robust_by_bits[32])]
    pts += [_point(source, method, b, clean_by_bits[b], robust_by_bits[b]) for b in (2, 4)]
    return pts


def test_sensitivity_verdict_follows_the_measured_drops():
    at = _sweep("m", {32: 0.7, 2: 0.3, 4: 0.6}, {32: 0.4, 2: 0.1, 4: 0.3})
    nat = _sweep("m-natural", {32: 0.9, 2: 0.85, 4: 0.9}, {32: 0, 2: 0, 4: 0})
    f = _sensitivity_finding({"m": at, "m-natural": nat})
    assert f.verdict == "holds" and any(e.startswith("2 bit") for e in f.evidence)
    f = _sensitivity_finding({"m": nat, "m-natural": at})  # the other way round
    assert f.verdict == "does not hold"
    assert _sensitivity_finding({"m": at}).verdict == "not tested"


def test_lgmp_verdict_follows_the_paired_test():
    uni = _sweep("m", {32: 0.7, 2: 0.3, 4: 0.6}, {32: 0.4, 2: 0.1, 4: 0.3})
    lg = [p for p in _sweep("m", {32: 0.7, 2: 0.6, 4: 0.65}, {32: 0.4, 2: 0.6, 4: 0.6}, "lgmp") if
          p.sweep["method"] == "lgmp"]
    assert _lgmp_finding({"m": uni + lg}).verdict == "holds"
    worse = [p for p in _sweep("m", {32: 0.7, 2: 0.1, 4: 0.2}, {32: 0.4, 2: 0.1, 4: 0.1}, "lgmp")
             if p.sweep["method"] == "lgmp"]
    assert _lgmp_finding({"m": uni + worse}).verdict == "does not hold"


def test_leaderboard_writes_findings_sweeps_and_per_layer_weights(tiny_zoo, tmp_path, capsys):
    results = tmp_path / "results"
    for p in _sweep("m", {32: 0.7, 2: 0.3, 4: 0.6}, {32: 0.4, 2: 0.1, 4: 0.3}):
        write_result(p, results / "sweeps" / "m" / f"{p.model.replace(':', '__')}.json")
    assert main(["weights", "res8-fp", "--zoo-dir", str(tiny_zoo), "--output-dir", str(results / "weights")]) == 0
    w = json.loads((results / "weights" / "res8-fp.json").read_text())
    assert len(w["layers"]) == 7 and w["totals"]["zero_channels"] == 0 and w["command"] == "qrobench weights res8-fp"
    write_leaderboard(results, zoo_dir=tiny_zoo)
    md = (results / "leaderboard.md").read_text()
    assert "## Findings" in md and "## Quantization sweeps" in md and "![sweep_m](plots/sweep_m.png)" in md
    doc = json.loads((results / "leaderboard.json").read_text())
    assert {f["verdict"] for f in doc["findings"]} <= {"holds", "does not hold", "mixed", "not tested",
                                                       "not established"}
    assert len(doc["sweeps"]) == 3 and "Findings" in (results / "leaderboard.html").read_text()


def test_collapsed_points_are_marked_and_not_counted_as_sensitivity():
    from qrobench.reports.studies import at_chance, sweep_table

    assert at_chance(_point("m", "uniform", 2, 0.1, 0.1, n=500))
    assert not at_chance(_point("m", "uniform", 2, 0.15, 0.0, n=500))
    # both collapse at 2 bits; at 4 bits the AT model loses far more
    at = _sweep("m", {32: 0.7, 2: 0.1, 4: 0.3}, {32: 0.4, 2: 0.1, 4: 0.1})
    nat = _sweep("m-natural", {32: 0.9, 2: 0.1, 4: 0.88}, {32: 0, 2: 0, 4: 0})
    f = _sensitivity_finding({"m": at, "m-natural": nat})
    assert f.verdict == "holds"
    assert any(e.startswith("2 bit") and "uninformative" in e for e in f.evidence)
    table = sweep_table({"m": at})
    assert table.set_index("bits")["at_chance"].to_dict() == {32: False, 2: True, 4: False}


def _zoo_result(name, clean, robust, n=400, seed=0):
    rng = np.random.default_rng(seed)
    c = np.zeros(n, bool)
    c[rng.permutation(n)[: int(clean * n)]] = True
    r = c.copy()
    r[np.flatnonzero(c)[int(robust * n):]] = False
    return Result(model=name, n=n, attacks={"pgd20": {}, "cw": {}},
                  per_seed=[SeedResult.from_masks(0, c, {"pgd20": r, "cw": r})]).summarize()


def _card(name, epochs=4, plan=None):
    from types import SimpleNamespace

    t = {"command": f"qrobench train {name} --recipe budget-nfgsm-ft --epochs {epochs} --init-from m-fp",
         "recipe": {"name": "budget-nfgsm-ft", "epochs": epochs}, "train_images": 49000, "init_from": "m-fp"}
    if plan:
        t["plan"] = plan
    return SimpleNamespace(name=name, training=t, precision="mixed" if plan else "4bit")


def test_fine_tuned_lgmp_verdict_needs_a_like_for_like_uniform_twin():
    from qrobench.reports.studies import _lgmp_finetuned_finding

    plan = {"avg_bits_budget": 4.0, "avg_bits": 3.99}
    cards = {"m-mixed-ft": _card("m-mixed-ft", plan=plan), "m-4bit": _card("m-4bit")}
    good, poor = _zoo_result("x", 0.7, 0.5, seed=1), _zoo_result("y", 0.7, 0.3, seed=1)
    f = _lgmp_finetuned_finding({"m-mixed-ft": good, "m-4bit": poor}, cards)
    assert f.verdict == "holds" and "+20.0 pp" in f.evidence[0]
    assert _lgmp_finetuned_finding({"m-mixed-ft": poor, "m-4bit": good}, cards).verdict == "does not hold"
    same = _lgmp_finetuned_finding({"m-mixed-ft": good, "m-4bit": good}, cards)
    assert same.verdict == "not established"
    cards["m-4bit"] = _card("m-4bit", epochs=6)  # a different schedule is listed, not counted
    f = _lgmp_finetuned_finding({"m-mixed-ft": good, "m-4bit": poor}, cards)
    assert f.verdict == "not tested" and "NOT like for like" in f.evidence[0]
    assert _lgmp_finetuned_finding({}, {}).verdict == "not tested"


def test_fullset_table_compares_all_points_with_the_first_thousand(tmp_path):
    from qrobench.reports.studies import fullset_table

    n = 3000
    clean = np.ones(n, bool)
    robust = np.zeros(n, bool)
    robust[:600] = True  # block 1: 60 % robust
    robust[1000:1300] = True  # block 2: 30 %
    robust[2000:2450] = True  # block 3: 45 %
    full = Result(model="m", n=n, attacks={"pgd20": {}},
                  per_seed=[SeedResult.from_masks(0, clean, {"pgd20": robust})]).summarize()
    write_result(full, tmp_path / "fullset" / "m__n3000.json")
    zoo = _zoo_result("m", 0.9, 0.5, n=1000)
    t = fullset_table(tmp_path, {"m": zoo})
    row = t.iloc[0]
    assert row["n"] == 3000 and row["worst_pct"] == pytest.approx(45.0)
    assert row["worst_first_pct"] == pytest.approx(60.0)
    assert (row["block_min_pct"], row["block_max_pct"]) == pytest.approx((30.0, 60.0))
    assert row["zoo_worst_pct"] == pytest.approx(50.0) and row["worst_lo"] < 45.0 < row["worst_hi"]
    assert fullset_table(tmp_path, {}).iloc[0]["zoo_worst_pct"] != row["zoo_worst_pct"]  # NaN without a zoo row


def test_sensitivity_is_not_tested_when_every_shared_point_collapsed():
    at = _sweep("m", {32: 0.7, 2: 0.1, 4: 0.1}, {32: 0.4, 2: 0.1, 4: 0.1})
    nat = _sweep("m-natural", {32: 0.9, 2: 0.1, 4: 0.1}, {32: 0, 2: 0, 4: 0})
    assert _sensitivity_finding({"m": at, "m-natural": nat}).verdict == "not tested"
    same = _sweep("m-natural", {32: 0.7, 2: 0.3, 4: 0.6}, {32: 0, 2: 0, 4: 0})
    at = _sweep("m", {32: 0.7, 2: 0.3, 4: 0.6}, {32: 0.4, 2: 0.1, 4: 0.3})
    assert _sensitivity_finding({"m": at, "m-natural": same}).verdict == "not established"


def test_tradeoff_pair_on_one_schedule_is_counted_with_its_robustness_cost():
    from qrobench.reports.studies import _tradeoff_findings

    cards = {"m-tnn-tradeoff": _card("m-tnn-tradeoff"), "m-tnn": _card("m-tnn")}
    zoo = {"m-tnn-tradeoff": _zoo_result("a", 0.75, 0.3, seed=2), "m-tnn": _zoo_result("b", 0.6, 0.45, seed=2)}
    clean_f, chan_f = _tradeoff_findings(zoo, {}, cards)
    assert clean_f.verdict == "holds" and "+15.0 pp" in clean_f.evidence[0]
    assert "worst case over pgd20,cw 30.0 % vs 45.0 %" in clean_f.evidence[0]
    zoo["m-tnn-tradeoff"], zoo["m-tnn"] = zoo["m-tnn"], zoo["m-tnn-tradeoff"]
    assert _tradeoff_findings(zoo, {}, cards)[0].verdict == "does not hold"
    assert chan_f.verdict == "not tested"


def test_per_layer_tables_never_put_two_architectures_side_by_side():
    from qrobench.reports.studies import Studies, per_layer_rows

    def w(prefix, n):
        return {"layers": [{"layer": f"{prefix}l{i}", "channels": 16, "sparsity": 0.5, "zero_channels": 0,
                            "max_channel_zero_frac": 0.6} for i in range(n)]}

    weights = {"a-tnn-tradeoff": w("", 3), "a-tnn": w("", 3), "b-tnn-tradeoff": w("members.0.", 6),
               "b-tnn": w("members.0.", 6)}
    tables = per_layer_rows(Studies({}, weights, None, []))
    assert [len(rows) for _, rows in tables] == [3, 6]
    assert all(len(h) == 4 for h, _ in tables)  # layer, C_in and the pair, per architecture
