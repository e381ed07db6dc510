"""A run names the CPU it ran on, a deployed int8 model's pieces from CPUs of different int8
kinds are not merged, and ``--expect-clean`` stops a run whose clean predictions differ from
the file its pieces will join (before any attack), leaving that file untouched."""

import dataclasses
import json

import pytest

from qrobench import evaluate
from qrobench.cli import main
from qrobench.data.cifar10 import EvalData
from qrobench.engine import write_result
from qrobench.engine.hardware import _INT8_DOT, cpu_info, int8_class
from qrobench.engine.merge import merge_results
from qrobench.engine.outcomes import decode_mask, encode_mask
from qrobench.engine.results import read_result
from qrobench.errors import QrobenchError
from qrobench.reports.console import format_result_table

EPS = 2 / 255


def test_a_run_records_its_cpu(tiny_trained, test_points, tmp_path):
    r = evaluate(tiny_trained, attacks=["fgsm"], n=20, data=EvalData(test_points.x[:20], test_points.y[:20], "t"),
                 eps=EPS, progress=False)
    c = cpu_info()
    assert r.cpu == c and r.device_name == c["name"] and r.device_name != ""
    assert c["int8_dot"] in {label for _, label in _INT8_DOT} | {"none", "unknown"}
    assert c["capability"] == r.cpu["capability"] != ""
    assert read_result(write_result(r, tmp_path / "r.json")).cpu == c
    assert f"device=cpu: {c['name']}, {c['capability']}, int8 dot product {c['int8_dot']}" in format_result_table(r)


def test_int8_pieces_from_cpus_of_other_kinds_are_not_merged(tiny_trained, test_points, tmp_path):
    pts = EvalData(test_points.x[:40], test_points.y[:40], test_points.source)
    kw = dict(n=40, data=pts, eps=EPS, progress=False)
    a = evaluate(tiny_trained, attacks=["fgsm"], **kw)
    b = evaluate(tiny_trained, attacks=["fgsm"], seed=1, **kw)
    int8 = {"format": "onnx", "execution": {"runtime": "onnxruntime", "version": "x", "device": "cpu"}}
    vnni = {"name": "cpu A", "capability": "AVX512", "int8_dot": "avx512-vnni"}
    avx2 = {"name": "cpu B", "capability": "AVX2", "int8_dot": "none"}
    fa = write_result(dataclasses.replace(a, deployment=int8, cpu=vnni), tmp_path / "a.json")
    fb = write_result(dataclasses.replace(b, deployment=int8, cpu=avx2), tmp_path / "b.json")
    assert int8_class(read_result(fa)) == "avx512-vnni" and int8_class(read_result(fb)) == "none"
    with pytest.raises(QrobenchError, match="different int8 dot products"):
        merge_results([fa, fb])
    # a float model's pieces may come from any CPU; the merged file lists both
    fa2 = write_result(dataclasses.replace(a, cpu=vnni), tmp_path / "a2.json")
    fb2 = write_result(dataclasses.replace(b, cpu=avx2), tmp_path / "b2.json")
    assert int8_class(read_result(fa2)) is None
    assert merge_results([fa2, fb2]).cpu == {"several": [vnni, avx2]}
    # pieces of one CPU keep it
    fb3 = write_result(dataclasses.replace(b, deployment=int8, cpu=vnni), tmp_path / "b3.json")
    assert merge_results([fa, fb3]).cpu == vnni


def test_a_merged_int8_record_keeps_its_cpu_class(tiny_trained, test_points, tmp_path):
    """A piece written before qrobench recorded the CPU (cpu None) merged with a VNNI piece gives
    ``{"several": [None, vnni]}``; that record must still refuse an AVX2 piece, and say so in print."""
    pts = EvalData(test_points.x[:40], test_points.y[:40], test_points.source)
    kw = dict(n=40, data=pts, eps=EPS, progress=False)
    runs = [evaluate(tiny_trained, attacks=["fgsm"], seed=s, **kw) for s in range(3)]
    int8 = {"format": "onnx", "execution": {"runtime": "onnxruntime", "version": "x", "device": "cpu"}}
    vnni = {"name": "cpu A", "capability": "AVX512", "int8_dot": "avx512-vnni"}
    avx2 = {"name": "cpu B", "capability": "AVX2", "int8_dot": "none"}
    old = write_result(dataclasses.replace(runs[0], deployment=int8, cpu=None), tmp_path / "old.json")
    new = write_result(dataclasses.replace(runs[1], deployment=int8, cpu=vnni), tmp_path / "new.json")
    merged = merge_results([old, new])
    assert merged.cpu == {"several": [None, vnni]} and int8_class(merged) == "avx512-vnni"
    both = write_result(merged, tmp_path / "both.json")
    assert int8_class(read_result(both)) == "avx512-vnni"
    other = write_result(dataclasses.replace(runs[2], deployment=int8, cpu=avx2), tmp_path / "other.json")
    with pytest.raises(QrobenchError, match="different int8 dot products"):
        merge_results([both, other])
    table = format_result_table(merged)
    assert "several CPUs (cpu A, AVX512, int8 dot product avx512-vnni; pieces that did not record theirs)" in table
    assert "None" not in table.splitlines()[0]


def test_expect_clean_stops_before_attacking(tiny_zoo, data_dir, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("QROBENCH_DATA", str(data_dir))
    row = tmp_path / "row.json"
    base = ["run", "--model", "res8-fp", "--n", "40", "--eps", "2/255", "--zoo-dir", str(tiny_zoo), "--quiet"]
    assert main([*base, "--attacks", "fgsm", "--output", str(row)]) == 0
    # a shard of the same points on the same machine: its clean predictions are the row's
    piece = tmp_path / "piece.json"
    assert main([*base, "--attacks", "cw", "--batch-size", "20", "--shard", "1/2", "--output", str(piece),
                 "--expect-clean", str(row)]) == 0
    assert read_result(piece).first_index == 20
    # a row whose clean predictions differ at one point of the shard: refused, nothing written
    d = json.loads(row.read_text())
    n = d["n"]
    clean = decode_mask(d["per_seed"][0]["outcomes"]["clean"], n)
    clean[5] = ~clean[5]  # in shard 0: the check covers every point of the file, not only the run's
    d["per_seed"][0]["outcomes"]["clean"] = encode_mask(clean)
    tampered = tmp_path / "tampered.json"
    tampered.write_text(json.dumps(d))
    before = tampered.read_text()
    capsys.readouterr()
    other = tmp_path / "other.json"
    assert main([*base, "--attacks", "cw", "--batch-size", "20", "--shard", "1/2", "--output", str(other),
                 "--expect-clean", str(tampered)]) == 2
    err = capsys.readouterr().err
    assert "1 of the file's 40 points get other clean predictions here (seed 0)" in err and "int8 dot product" in err
    assert not other.exists() and tampered.read_text() == before
    assert not (tmp_path / "other.json.journal").exists()  # no clean batches left for a --resume to reuse
    # another seed, or a file of another model, is refused with what to do
    assert main([*base, "--attacks", "cw", "--seed", "5", "--output", str(other), "--expect-clean", str(row)]) == 2
    assert "no per-point clean outcomes for seed 5" in capsys.readouterr().err
    with pytest.raises(QrobenchError, match="card sha256"):
        from qrobench.zoo.store import Zoo

        model, card = Zoo(tiny_zoo).load("en8-tnn")
        evaluate(model, attacks=["fgsm"], n=20, eps=EPS, progress=False, card=card, expect_clean=read_result(row),
                 data=EvalData(*_points(data_dir, 20)))


def _points(data_dir, n):
    from qrobench.data.cifar10 import load_cifar10_test

    p = load_cifar10_test(n, data_dir, allow_download=False)
    return p.x, p.y, p.source
