"""``qrobench compare`` compares like with like: the same points, threat and ε, over the attacks
both files measured (issue #27, item 5). Built from a committed zoo result, so nothing is trained
or attacked here."""

import copy
from pathlib import Path

import pytest

from qrobench.cli import main
from qrobench.engine.results import Result, SeedResult, read_result, write_result
from qrobench.errors import QrobenchError
from qrobench.reports.compare import compare_results

REPO = Path(__file__).resolve().parents[1]
ZOO_RESULT = REPO / "results" / "zoo" / "res20-fp.json"  # the whole battery with per-point outcomes


@pytest.fixture(scope="module")
def full() -> Result:
    r = read_result(ZOO_RESULT)
    assert r.has_outcomes and {"pgd20", "cw", "square", "aa"} <= set(r.attacks)
    return r


def only(r: Result, keep) -> Result:
    """The same evaluation with only the attacks ``keep``, as a run of those attacks would store it."""
    out = copy.deepcopy(r)
    out.attacks = {a: s for a, s in r.attacks.items() if a in keep}
    clean = r.masks("clean")
    out.per_seed = [SeedResult.from_masks(s.seed, clean[i], {a: r.masks(a)[i] for a in out.attacks})
                    for i, s in enumerate(r.per_seed)]
    return out.summarize()


def changed(r: Result, **fields) -> Result:
    out = copy.deepcopy(r)
    for k, v in fields.items():
        setattr(out, k, v)
    return out


def _compare(capsys, tmp_path, a: Result, b: Result | Path, *extra):
    pa = write_result(a, tmp_path / "a.json")
    pb = b if isinstance(b, Path) else write_result(b, tmp_path / "b.json")
    code = main(["compare", str(pa), str(pb), *extra])
    cap = capsys.readouterr()
    return code, cap.out, cap.err


def test_a_model_against_itself_over_fewer_attacks_shows_no_difference(capsys, tmp_path, full):
    """The issue's case: res20-fp measured with pgd20, cw against the zoo's res20-fp (whole battery).
    Over each file's own battery the subset looks better on the points only the other attacks break."""
    sub = only(full, ["pgd20", "cw"])
    assert sub.worst_case_acc > full.worst_case_acc  # what the old compare set against each other
    code, out, err = _compare(capsys, tmp_path, sub, ZOO_RESULT)
    assert code == 0 and err == ""
    lines = out.splitlines()
    assert lines[0].startswith("over the attacks both measured: pgd20, cw (left out:")
    assert "does better: 0, worse: 0" in lines[-1] and "p = 1 (not significant at 5 %)" in lines[-1]
    assert lines[1].split("(")[0] == lines[2].split("(")[0]  # the same worst case and interval

    c = compare_results(sub, full)
    assert (c.attacks, c.better, c.worse, c.p, c.significant, c.warnings) == (["pgd20", "cw"], 0, 0, 1.0, False, [])
    assert c.a.mean == c.b.mean == full.worst_case_over(["pgd20", "cw"])[0]


def test_attacks_given_must_be_held_by_both_files(capsys, tmp_path, full):
    sub = only(full, ["pgd20", "cw"])
    code, out, _ = _compare(capsys, tmp_path, sub, ZOO_RESULT, "--attacks", "cw")
    assert code == 0 and out.startswith("over the attacks given: cw")
    code, out, err = _compare(capsys, tmp_path, sub, ZOO_RESULT, "--attacks", "pgd20,aa")
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and "--attacks must name attacks both files measured" in err
    assert "a.json lacks aa" in err and "both measured: pgd20, cw" in err


def test_files_sharing_no_attack_are_refused(capsys, tmp_path, full):
    code, out, err = _compare(capsys, tmp_path, only(full, ["pgd20"]), only(full, ["square", "aa"]))
    assert code == 2 and out == "" and err.count("\n") == 1 and "share no attack" in err


@pytest.mark.parametrize("fields, words", [
    ({"n": 500}, "different points"),
    ({"first_index": 1000}, "different points"),
    ({"dataset": "cifar100"}, "different points"),
    ({"eps": 4 / 255}, "different threats"),
    ({"threat_model": "l2"}, "different threats"),
])
def test_different_points_or_threats_are_refused(capsys, tmp_path, full, fields, words):
    code, out, err = _compare(capsys, tmp_path, changed(full, **fields), ZOO_RESULT)
    assert code == 2 and out == "" and err.count("\n") == 1 and words in err
    with pytest.raises(QrobenchError, match=words):
        compare_results(full, changed(full, **fields))


def test_results_without_outcomes_are_refused(full):
    bare = changed(full, per_seed=[changed(s, outcomes=None) for s in full.per_seed])
    with pytest.raises(QrobenchError, match="no per-point outcomes"):
        compare_results(full, bare)


def test_other_seeds_or_batch_sizes_warn_in_one_line(capsys, tmp_path, full):
    other_seed = changed(full, per_seed=[changed(s, seed=s.seed + 1) for s in full.per_seed])
    code, out, err = _compare(capsys, tmp_path, other_seed, ZOO_RESULT)
    assert code == 0 and "does better: 0, worse: 0" in out
    assert err.count("\n") == 1 and err.startswith("warning: the seeds differ")
    code, out, err = _compare(capsys, tmp_path, changed(full, batch_size=full.batch_size // 2), ZOO_RESULT)
    assert code == 0 and err.count("\n") == 1 and err.startswith("warning: the batch sizes differ")


def test_bf16_gradients_against_fp32_warn(full):
    """fp32 records leave grad_precision out, so a bf16 file differs by a key the other lacks."""
    bf16 = copy.deepcopy(full)
    bf16.attacks["pgd20"] = {**bf16.attacks["pgd20"], "grad_precision": "bf16"}
    c = compare_results(bf16, full, attacks=["pgd20", "cw"])
    assert c.warnings == ["pgd20 ran with other settings in the two files (grad_precision)"]
    assert compare_results(full, copy.deepcopy(full), attacks=["pgd20", "cw"]).warnings == []


def test_a_cascade_file_compares_only_over_a_leading_part_of_its_battery(full):
    cascade = changed(only(full, ["pgd20", "cw", "square"]), cascade=True)
    assert compare_results(cascade, full, ["pgd20", "cw"]).attacks == ["pgd20", "cw"]
    with pytest.raises(QrobenchError, match="--cascade"):
        compare_results(cascade, full, ["cw", "square"])
