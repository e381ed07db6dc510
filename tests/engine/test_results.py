"""The result record: typed, versioned, complete when built, and v1 files still load."""

import json
import statistics
from pathlib import Path

import pytest

from qrobench.engine.results import (
    RESULT_SCHEMA,
    Result,
    SeedResult,
    migrate,
    read_result,
    write_result,
)
from qrobench.errors import QrobenchError

REPO = Path(__file__).resolve().parents[2]
COMMITTED = [p for p in sorted([*(REPO / "results").glob("zoo/*.json"), *(REPO / "results").glob("check/*.json")])
             if json.loads(p.read_text()).get("schema", "").startswith("qrobench-result-")]


def _seed(seed, clean, pgd, worst):
    return SeedResult(seed=seed, clean_acc=clean, robust_acc={"pgd20": pgd}, worst_case_acc=worst,
                      wall_time_s={"pgd20": 1.0 + seed}, clean_time_s=0.5)


def test_summarize_derives_every_aggregate_from_the_seeds():
    r = Result(model="m", n=100, eps=8 / 255, attacks={"pgd20": {}}, flags=["stochastic"],
               per_seed=[_seed(4, 0.50, 0.30, 0.30), _seed(5, 0.54, 0.28, 0.27), _seed(6, 0.52, 0.35, 0.31)])
    r.summarize()
    assert r.clean_acc == pytest.approx(0.52) and r.std.clean_acc == pytest.approx(statistics.stdev([.5, .54, .52]))
    assert r.robust_acc["pgd20"] == pytest.approx(statistics.fmean([.30, .28, .35]))
    assert r.worst_case_acc == pytest.approx(statistics.fmean([.30, .27, .31]))
    assert r.repeats == 3 and r.seed == 4 and r.seeds == [4, 5, 6] and r.wall_time_s == {"pgd20": 6.0}
    assert r.flags == ["stochastic"]
    low = Result(model="m", attacks={"pgd20": {}}, per_seed=[_seed(0, 0.15, 0.1, 0.1)]).summarize()
    assert "low-clean-accuracy" in low.flags  # the protocol's clean-accuracy floor
    with pytest.raises(ValueError):
        Result(model="m").summarize()


def test_write_then_read_gives_the_same_record(tmp_path):
    r = Result(model="m", n=100, eps=8 / 255, attacks={"pgd20": {"steps": 20}}, command="qrobench run --model m",
               protocol={"name": "check", "n": 100}, per_seed=[_seed(0, 0.5, 0.3, 0.3)]).summarize()
    path = write_result(r, tmp_path / "r.json")
    d = json.loads(path.read_text())
    assert d["schema"] == RESULT_SCHEMA == "qrobench-result-v2" and list(d)[0] == "schema"
    assert "submission" not in d and "merged_from" not in d  # absent optional parts are not written
    assert read_result(path) == r
    assert r["clean_acc"] == r.clean_acc and r["std"]["clean_acc"] == 0.0  # read like the old dicts
    assert "protocol" in r and "submission" not in r and "card_sha256" in r
    with pytest.raises(KeyError):
        r["nope"]


def test_the_committed_results_are_found():
    assert {p.parent.name for p in COMMITTED} == {"zoo", "check"} and len(COMMITTED) >= 24


@pytest.mark.parametrize("path", COMMITTED, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_every_committed_result_loads_through_the_migration(path):
    d = json.loads(path.read_text())
    r = read_result(path)
    for key in ("model", "n", "eps", "clean_acc", "robust_acc", "worst_case_acc", "bits", "size_bytes",
                "sparsity", "channel_sparsity", "card_sha256"):
        assert getattr(r, key) == d[key], key
    assert [s.seed for s in r.per_seed] == [s["seed"] for s in d["per_seed"]]
    assert r.std.worst_case_acc == d["std"]["worst_case_acc"]
    if "check_protocol" in d:  # v1 check baselines: the protocol moved under one name
        assert r.protocol == {"name": "check", **d["check_protocol"]}
    # re-summarising the stored seeds gives the stored aggregates (nothing was typed by hand)
    again = Result.from_dict(d).summarize()
    assert again.clean_acc == pytest.approx(d["clean_acc"]) and again.worst_case_acc == pytest.approx(
        d["worst_case_acc"]) and again.robust_acc == pytest.approx(d["robust_acc"])


def test_migration_fills_bits_from_the_precision_and_keeps_the_input():
    old = {"schema": "qrobench-result-v1", "model": "m", "n": 10, "eps": 0.03, "clean_acc": 0.5,
           "robust_acc": {}, "worst_case_acc": 0.5, "precision": "tnn", "quant_measurement": {"layer_bits": {}}}
    new = migrate(old)
    assert new["bits"] == 2.0 and new["weights"] == {"layer_bits": {}} and new["schema"] == RESULT_SCHEMA
    assert old["schema"] == "qrobench-result-v1" and "quant_measurement" in old


def test_bad_files_get_clear_errors(tmp_path):
    (tmp_path / "junk.json").write_text('{"hello": 1}')
    with pytest.raises(QrobenchError, match="is not a qrobench result file"):
        read_result(tmp_path / "junk.json")
    (tmp_path / "short.json").write_text(json.dumps({"schema": RESULT_SCHEMA, "model": "m", "n": 3}))
    with pytest.raises(QrobenchError, match="lacks field.*eps, clean_acc, robust_acc, worst_case_acc"):
        read_result(tmp_path / "short.json")
    (tmp_path / "broken.json").write_text("{not json")
    with pytest.raises(QrobenchError, match="cannot read"):
        read_result(tmp_path / "broken.json")
    with pytest.raises(QrobenchError, match="does not exist"):
        read_result(tmp_path / "missing.json")
