"""The threat models beside L∞ in the leaderboard (issue #26, item 5): the L2 and corruptions
tables, the one-row-per-model summary, and RobustMQ's two claims decided by their stated rules
on planted per-point outcomes."""

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd

from qrobench.engine.results import Result, SeedResult, write_result
from qrobench.reports.stats import wilson
from qrobench.reports.studies import data, render
from qrobench.reports.studies.findings import _robustmq_bits_finding, _robustmq_quantization_finding

N = 400
CELLS = [("gaussian_noise", 1), ("gaussian_noise", 5), ("fog", 3)]


def _first(k: int) -> np.ndarray:
    return np.arange(N) < k


def _linf(model: str, bits: float, robust: int, attacks=("pgd20", "aa"), precision="fp") -> Result:
    """L∞: every point clean, the first ``robust`` points survive every attack."""
    per_seed = [SeedResult.from_masks(0, np.ones(N, bool), {a: _first(robust) for a in attacks})]
    return Result(model=model, n=N, eps=8 / 255, precision=precision, bits=bits, attacks={a: {} for a in attacks},
                  per_seed=per_seed).summarize()


def _l2(model: str, robust: int, attacks=("pgd20", "cw")) -> Result:
    per_seed = [SeedResult.from_masks(0, np.ones(N, bool), {a: _first(robust + 5 * i) for i, a in enumerate(attacks)})]
    return Result(model=model, n=N, eps=0.5, norm="L2", threat_model="l2", precision="4bit", bits=4.0,
                  attacks={a: {} for a in attacks}, per_seed=per_seed).summarize()


def _corruptions(model: str, correct: int, source="CIFAR-10-C-style (generated): x") -> Result:
    """Each column classifies the first ``correct`` points (and nothing else) correctly."""
    cols = {f"{c}@{s}": {"corruption": c, "severity": s} for c, s in CELLS}
    per_seed = [SeedResult.from_masks(0, np.ones(N, bool), {k: _first(correct) for k in cols})]
    return Result(model=model, n=N, threat_model="corruptions", norm="none", precision="fp", bits=32.0,
                  attacks=cols, per_seed=per_seed, data_source=source).summarize()


def _card(precision: str, init_from=None, fmt="torch"):
    return SimpleNamespace(precision=precision, format=fmt, training={"init_from": init_from} if init_from else {})


def test_l2_table_ranks_only_rows_whose_battery_has_autoattack(tmp_path: Path):
    folder = tmp_path / data.L2_DIR
    write_result(_l2("with-aa", 100, ("pgd20", "aa")), folder / "with-aa.json")
    write_result(_l2("no-aa", 200), folder / "no-aa.json")
    t = data.l2_table(tmp_path).set_index("model")
    assert bool(t.loc["with-aa", "ranked"]) and not bool(t.loc["no-aa", "ranked"])
    assert t.loc["no-aa", "worst_case_pct"] == 100 * 200 / N  # the worst case over the battery run
    md = "\n".join(render.l2_markdown(SimpleNamespace(l2=data.l2_table(tmp_path)), "L2"))
    assert md.index("with-aa") < md.index("no-aa")  # ranked rows first, whatever their numbers
    assert "provisional: no AutoAttack" in md


def test_l2_table_gives_a_randomised_row_its_seed_spread_and_widened_interval(tmp_path: Path):
    """As on the L∞ table: mean ± std over the seeds, the interval widened by their spread (t·s/√k)."""
    folder = tmp_path / data.L2_DIR
    per_seed = [SeedResult.from_masks(s, np.ones(N, bool), {"eot-pgd20": _first(k)})
                for s, k in enumerate((180, 200, 220))]  # 45, 50, 55 %
    write_result(Result(model="noisy", n=N, eps=0.5, norm="L2", threat_model="l2", precision="fp", bits=32.0,
                        attacks={"eot-pgd20": {}}, per_seed=per_seed, stochastic=True).summarize(),
                 folder / "noisy.json")
    write_result(_l2("one-seed", 200), folder / "one-seed.json")
    t = data.l2_table(tmp_path).set_index("model")
    lo, hi = t.loc["noisy", "worst_lo"], t.loc["noisy", "worst_hi"]
    wlo, whi = (100 * v for v in wilson(0.5, N))
    # s = 5 pp, k = 3: t(0.975, 2) · 5 / √3 = 12.4 pp of noise on top of Wilson's ±4.9 pp
    assert 36.0 < lo < wlo - 5 and whi + 5 < hi < 64.0 and abs((lo + hi) / 2 - 50.0) < 0.5
    assert abs(t.loc["noisy", "worst_std"] - 5.0) < 1e-9
    one = t.loc["one-seed"]
    assert (one["worst_lo"], one["worst_hi"]) == tuple(100 * v for v in wilson(200 / N, N))  # one seed: Wilson
    md = "\n".join(render.l2_markdown(SimpleNamespace(l2=data.l2_table(tmp_path)), "L2"))
    assert f"50.0 ± 5.0 [{lo:.1f}, {hi:.1f}]" in md
    assert f"50.0 [{one['worst_lo']:.1f}, {one['worst_hi']:.1f}]" in md


def test_corruption_table_reads_the_mean_and_names_the_source(tmp_path: Path):
    write_result(_corruptions("m", 100), tmp_path / data.CORRUPTIONS_DIR / "m.json")
    t = data.corruption_table(tmp_path)
    assert t.loc[0, "mean_pct"] == 25.0 and t.loc[0, "columns"] == len(CELLS)
    assert t.loc[0, "severity5_pct"] == 25.0
    md = "\n".join(render.corruptions_markdown(SimpleNamespace(corruptions=t), "C"))
    assert "generated" in md and "| 25.0 " in md


def test_summary_bounds_a_missing_autoattack_and_shows_the_cap():
    zoo = {"a": _linf("a", 32, 150), "b": _linf("b", 4, 120, attacks=("pgd20",), precision="4bit")}
    cards = {"a": _card("fp"), "b": _card("4bit", "a")}
    l2 = pd.DataFrame([{"model": "b", "autoattack": None, "worst_case_pct": 44.0, "bits": 4.0}])
    flips = pd.DataFrame([{"model": "b", "flips": None, "cap": 200}, {"model": "a", "flips": 14, "cap": 200}])
    t = data.threat_summary(zoo, cards, l2, pd.DataFrame(), pd.DataFrame(), flips)
    headers, rows = render.threat_rows(t)
    by = {r[0]: dict(zip(headers, r, strict=True)) for r in rows}
    assert by["a"]["L∞ AA %"] == "37.5" and by["b"]["L∞ AA %"] == "≤ 30.0"
    assert by["b"]["L2 AA %"] == "≤ 44.0" and by["a"]["L2 AA %"] == "—"
    assert by["b"]["BFA flips"] == "> 200" and by["a"]["BFA flips"] == "14"
    assert [r[0] for r in rows] == ["a", "b"]  # widest first


def _family(adv_q: int, corr_q: int):
    zoo = {"fp": _linf("fp", 32, 150), "q": _linf("q", 4, adv_q, precision="4bit")}
    corr = {"fp": _corruptions("fp", 250), "q": _corruptions("q", corr_q)}
    return zoo, corr, {"fp": _card("fp"), "q": _card("4bit", "fp")}


def test_robustmq_quantization_claim_holds_only_when_both_parts_hold():
    assert _robustmq_quantization_finding(*_family(200, 200)).verdict == "holds"  # more adv., less corr.
    assert _robustmq_quantization_finding(*_family(100, 200)).verdict == "does not hold"  # less adv.
    assert _robustmq_quantization_finding(*_family(200, 300)).verdict == "does not hold"  # more corr.
    assert _robustmq_quantization_finding(*_family(151, 249)).verdict == "not established"  # nothing significant


def test_robustmq_bits_claim_counts_pairs_within_a_family():
    f = _robustmq_bits_finding(*_family(200, 200))  # fewer bits: more adv., less corr. = the claim
    assert f.verdict == "holds"
    zoo, corr, cards = _family(100, 300)
    assert _robustmq_bits_finding(zoo, corr, cards).verdict == "does not hold"
    corr["q"] = _corruptions("q", 200, source="CIFAR-10-C (official arrays): y")  # other images: not paired
    assert _robustmq_bits_finding(zoo, corr, cards).verdict == "not tested"


def _swept(r: Result, method: str, bits: int) -> Result:
    r.sweep = {"source": "fp", "method": method, "bits_budget": bits, "avg_bits": float(bits)}
    return r


def test_robustmq_claims_read_sweep_points_measured_under_both_threats():
    sweeps = {"fp": [_swept(_linf("fp", 32, 150), "float", 32), _swept(_linf("fp:4", 4, 200), "uniform", 4),
                     _swept(_linf("fp:2", 2, 260), "uniform", 2)]}
    csweeps = {"fp": [_swept(_corruptions("fp", 250), "float", 32), _swept(_corruptions("fp:4", 200), "uniform", 4),
                      _swept(_corruptions("fp:2", 150), "uniform", 2)]}
    q = _robustmq_quantization_finding({}, {}, {}, sweeps, csweeps)
    assert q.verdict == "holds" and sum("sweep fp" in e for e in q.evidence) == 2
    b = _robustmq_bits_finding({}, {}, {}, sweeps, csweeps)
    assert b.verdict == "holds" and "32 vs 4 bits" in " ".join(b.evidence)
    csweeps["fp"][2] = _swept(_corruptions("fp:2", 300), "uniform", 2)  # 2 bits beats 4 and float on corruptions
    assert _robustmq_bits_finding({}, {}, {}, sweeps, csweeps).verdict == "does not hold"


def test_collapsed_sweep_points_are_left_out_of_the_robustmq_claims():
    collapsed = Result(model="fp:1", n=N, eps=8 / 255, precision="bnn", bits=1.0, attacks={"pgd20": {}},
                       per_seed=[SeedResult.from_masks(0, _first(40), {"pgd20": _first(0)})]).summarize()
    sweeps = {"fp": [_swept(_linf("fp", 32, 150), "float", 32), _swept(collapsed, "uniform", 1)]}
    csweeps = {"fp": [_swept(_corruptions("fp", 250), "float", 32), _swept(_corruptions("fp:1", 40), "uniform", 1)]}
    assert _robustmq_quantization_finding({}, {}, {}, sweeps, csweeps).verdict == "not tested"  # at chance: 10 %
