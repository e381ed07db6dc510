"""The one selection pass: one result per (model, threat model, ε, dataset), read by every output."""

from pathlib import Path

from qrobench.engine.results import Result, write_result
from qrobench.reports.collect import (
    ResultFile,
    ResultKey,
    at_eps,
    find_results,
    select,
    select_per_key,
    worst_case_curves,
)

EPS8, EPS2 = 8 / 255, 2 / 255


def rf(name, model, n=1000, eps=EPS8, threat_model="linf", dataset="cifar10", attacks=("pgd20",), worst=0.4):
    r = Result(model=model, n=n, eps=eps, threat_model=threat_model, dataset=dataset, card_sha256="a",
               robust_acc={a: worst for a in attacks}, worst_case_acc=worst, timestamp="2026-01-01T00:00:00Z")
    return ResultFile(Path(f"{name}.json"), r)


def test_one_result_per_model_threat_model_eps_and_dataset():
    small, big = rf("small", "m", n=500), rf("big", "m", n=1000)
    l2 = rf("l2", "m", n=2000, threat_model="l2")  # more points, but another threat model: not a rival
    c10c = rf("c10c", "m", n=5000, dataset="cifar10-c")
    eps2 = rf("eps2", "m", n=3000, eps=EPS2)
    other = rf("other", "a-model")
    picked = select_per_key([small, big, l2, c10c, eps2, other], {})
    assert picked == {ResultKey("a-model", "linf", EPS8, "cifar10"): other,
                      ResultKey("m", "l2", EPS8, "cifar10"): l2,
                      ResultKey("m", "linf", EPS2, "cifar10"): eps2,
                      ResultKey("m", "linf", EPS8, "cifar10"): big,
                      ResultKey("m", "linf", EPS8, "cifar10-c"): c10c}
    assert list(picked) == sorted(picked)  # in key order: model first
    assert at_eps(picked, EPS8) == [other, big]  # the table's slice: linf, cifar10, by model
    assert at_eps(picked, EPS8, threat_model="l2") == [l2]
    assert at_eps(picked, EPS8, dataset="cifar10-c") == [c10c]


def test_only_live_results_are_read(tmp_path):
    """Kept files (retired and superseded models, the pieces a row was merged from, the CI
    baselines) stay readable on disk but never reach a table."""
    r = rf("m", "m").result
    for folder in ("zoo", "retired/zoo", "superseded/zoo", "pieces/m", "check", "threats/l2/.x"):
        (tmp_path / folder).mkdir(parents=True)
        write_result(r, tmp_path / folder / "m.json")
    assert [f.path.relative_to(tmp_path).as_posix() for f in find_results(tmp_path)] == ["zoo/m.json"]


def test_eps_within_tolerance_is_one_eps():
    a, b = rf("a", "m", n=500), rf("b", "m", n=800, eps=EPS8 + 1e-9)
    assert list(select_per_key([a, b], {}).values()) == [b]


def test_curves_need_attacks_and_stay_in_one_threat_model():
    clean_only = rf("clean", "m", n=5000, attacks=())  # the table may show it; a curve point needs a worst case
    at8, at2 = rf("at8", "m", worst=0.4), rf("at2", "m", eps=EPS2, worst=0.6)
    l2 = rf("l2", "m", eps=0.5, threat_model="l2", worst=0.3)
    sel = select([clean_only, at8, at2, l2], {}, EPS8)
    assert sel.rows == [clean_only]
    assert list(sel.with_attacks.values()) == [l2, at2, at8]
    assert sel.curves() == {"m": {EPS2: 0.6, EPS8: 0.4}}
    assert worst_case_curves(sel.with_attacks, threat_model="l2") == {"m": {0.5: 0.3}}


def test_per_model_is_the_best_result_over_every_key():
    a8, a2 = rf("a8", "m", n=500), rf("a2", "m", n=900, eps=EPS2)
    sel = select([a8, a2, rf("x", "x")], {}, EPS8)
    assert [r.path.name for r in sel.per_model()] == ["a2.json", "x.json"]
