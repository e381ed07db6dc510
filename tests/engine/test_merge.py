"""Seeds measured in separate runs merge into exactly the result of one multi-seed run."""

import json

import pytest
import torch

from qrobench import evaluate
from qrobench.cli import main
from qrobench.data.cifar10 import EvalData
from qrobench.engine import write_result
from qrobench.engine.merge import merge_results
from qrobench.errors import QrobenchError
from qrobench.models import create_model

EPS = 2 / 255
N = 40


@pytest.fixture(scope="module")
def noisy_runs(test_points, tmp_path_factory):
    """A randomised model evaluated once with three seeds, and once per seed."""
    torch.manual_seed(0)
    model = create_model("preact_resnet", depth=8, ensemble=2, noise_coef=0.5)
    pts = EvalData(test_points.x[:N], test_points.y[:N], test_points.source)
    kw = dict(attacks=["fgsm", "pgd20"], n=N, data=pts, eps=EPS, progress=False)
    together = evaluate(model, seed=0, repeats=3, **kw)
    folder = tmp_path_factory.mktemp("seeds")
    files = []
    for s in range(3):
        r = evaluate(model, seed=s, repeats=1, command=f"qrobench run --seed {s} --repeats 1", **kw)
        files.append(write_result(r, folder / f"s{s}.json"))
    return together, files, (model, kw)


def _numbers(r):
    return (r["clean_acc"], r["robust_acc"], r["worst_case_acc"], r["std"], r["repeats"],
            [(p["seed"], p["clean_acc"], p["robust_acc"], p["worst_case_acc"]) for p in r["per_seed"]])


def test_seeds_run_apart_merge_into_the_numbers_of_one_run(noisy_runs):
    together, files, _ = noisy_runs
    # the seeds really differ, so the check below is not trivially true
    assert len({(p["clean_acc"], tuple(p["robust_acc"].values())) for p in together["per_seed"]}) > 1
    merged = merge_results(list(reversed(files)))  # order of the files does not matter
    assert _numbers(merged) == _numbers(together)
    assert merged["seed"] == 0 and [m["seeds"] for m in merged["merged_from"]] == [[2], [1], [0]]
    assert merged["merged_from"][0]["command"] == "qrobench run --seed 2 --repeats 1"


def test_merging_in_steps_equals_merging_at_once(noisy_runs, tmp_path):
    together, files, _ = noisy_runs
    first_two = write_result(merge_results(files[:2]), tmp_path / "s01.json")
    merged = merge_results([first_two, files[2]])
    assert _numbers(merged) == _numbers(together)
    assert [m["file"] for m in merged["merged_from"]] == ["s0.json", "s1.json", "s2.json"]


def test_merge_refuses_a_seed_twice_and_different_measurements(noisy_runs, tmp_path):
    _, files, (model, kw) = noisy_runs
    with pytest.raises(QrobenchError, match="seed 0 is in both"):
        merge_results([files[0], files[1], files[0]])
    other = evaluate(model, seed=5, repeats=1, **{**kw, "attacks": ["pgd20", "fgsm"]})
    with pytest.raises(QrobenchError, match="attacks"):
        merge_results([files[0], write_result(other, tmp_path / "order.json")])
    fewer = json.loads(files[1].read_text())
    fewer["n"] = N // 2
    (tmp_path / "n.json").write_text(json.dumps(fewer))
    with pytest.raises(QrobenchError, match="n: 20 vs 40"):
        merge_results([files[0], tmp_path / "n.json"])
    (tmp_path / "junk.json").write_text('{"hello": 1}')
    with pytest.raises(QrobenchError, match="not a qrobench result"):
        merge_results([files[0], tmp_path / "junk.json"])
    with pytest.raises(QrobenchError, match="at least two"):
        merge_results([files[0]])


def test_merge_cli_writes_nothing_when_refused(noisy_runs, tmp_path, capsys):
    _, files, _ = noisy_runs
    out = tmp_path / "merged.json"
    out.write_text("previous result\n")
    assert main(["merge", str(files[0]), str(files[0]), "--output", str(out)]) == 2
    assert "seed 0 is in both" in capsys.readouterr().err
    assert out.read_text() == "previous result\n"
    assert main(["merge", *map(str, files), "--output", str(out)]) == 0
    merged = json.loads(out.read_text())
    assert merged["repeats"] == 3 and merged["command"].startswith("qrobench merge ")
    assert "seed=0, repeats=3" in capsys.readouterr().out
    assert main(["merge", str(files[0]), str(files[2]), "--output", str(out)]) == 0
    assert "seeds=0,2" in capsys.readouterr().out  # not "repeats=2", which reads as seeds 0 and 1


def test_attacks_run_apart_merge_into_the_numbers_of_one_run(tiny_trained, test_points, tmp_path):
    """fgsm and cw draw no randomness, so run apart and merged they give exactly one run's numbers."""
    pts = EvalData(test_points.x[:60], test_points.y[:60], test_points.source)
    kw = dict(n=60, data=pts, eps=EPS, progress=False)
    together = evaluate(tiny_trained, attacks=["fgsm", "cw"], **kw)
    a = write_result(evaluate(tiny_trained, attacks=["fgsm"], **kw), tmp_path / "fgsm.json")
    b = write_result(evaluate(tiny_trained, attacks=["cw"], **kw), tmp_path / "cw.json")
    merged = merge_results([a, b], command="qrobench merge fgsm.json cw.json")
    assert list(merged.attacks) == ["fgsm", "cw"] and merged.attacks == together.attacks
    assert (merged.clean_acc, merged.robust_acc, merged.worst_case_acc) == \
        (together.clean_acc, together.robust_acc, together.worst_case_acc)
    assert merged.per_seed[0].outcomes == together.per_seed[0].outcomes
    assert merged.worst_case_acc <= min(merged.robust_acc.values())
    assert [m["attacks"] for m in merged.merged_from] == [["fgsm"], ["cw"]]


def test_attacks_run_at_other_batch_sizes_merge_and_say_so(tiny_trained, test_points, tmp_path):
    """The zoo's basic battery ran in one batch of 1,000 and AutoAttack in shards of 100: a
    deterministic attack's outcomes do not depend on the batch, so the merge equals one run and
    the attack's settings record its own batch size."""
    pts = EvalData(test_points.x[:60], test_points.y[:60], test_points.source)
    kw = dict(n=60, data=pts, eps=EPS, progress=False)
    together = evaluate(tiny_trained, attacks=["fgsm", "cw"], batch_size=60, **kw)
    a = write_result(evaluate(tiny_trained, attacks=["fgsm"], batch_size=60, **kw), tmp_path / "fgsm.json")
    b = write_result(evaluate(tiny_trained, attacks=["cw"], batch_size=20, **kw), tmp_path / "cw.json")
    merged = merge_results([a, b])
    assert merged.per_seed[0].outcomes == together.per_seed[0].outcomes
    assert merged.batch_size == 60 and merged.attacks["fgsm"] == together.attacks["fgsm"]
    assert merged.attacks["cw"] == {**together.attacks["cw"], "batch_size": 20}


def test_attack_merge_refuses_what_it_cannot_combine(tiny_trained, test_points, tmp_path):
    pts = EvalData(test_points.x[:30], test_points.y[:30], test_points.source)
    kw = dict(n=30, data=pts, eps=EPS, progress=False)
    fgsm = write_result(evaluate(tiny_trained, attacks=["fgsm"], **kw), tmp_path / "fgsm.json")
    both = write_result(evaluate(tiny_trained, attacks=["fgsm", "cw"], **kw), tmp_path / "both.json")
    with pytest.raises(QrobenchError, match="attack fgsm is in both"):
        merge_results([fgsm, both])
    other_seed = write_result(evaluate(tiny_trained, attacks=["cw"], seed=1, **kw), tmp_path / "s1.json")
    with pytest.raises(QrobenchError, match="seeds"):
        merge_results([fgsm, other_seed])
    torch.manual_seed(3)
    untrained = create_model("preact_resnet", depth=8).eval()
    cw_other = write_result(evaluate(untrained, attacks=["cw"], **kw), tmp_path / "other.json")
    with pytest.raises(QrobenchError, match="clean predictions differ"):
        merge_results([fgsm, cw_other])
    old = json.loads(both.read_text())
    old["schema"] = "qrobench-result-v1"
    old["attacks"] = {"cw": old["attacks"]["cw"]}
    for s in old["per_seed"]:
        del s["outcomes"]
    (tmp_path / "v1.json").write_text(json.dumps(old))
    with pytest.raises(QrobenchError, match="no per-point outcomes"):
        merge_results([fgsm, tmp_path / "v1.json"])
