"""--cascade-from: a slow attack only on the points an earlier run's attacks left standing, the
worst case over both files exact, the attack's own accuracy never shown as if it were its own."""

import copy
import dataclasses
import json
import types

import numpy as np
import pytest

from qrobench import evaluate
from qrobench.cli import main
from qrobench.data.cifar10 import EvalData
from qrobench.engine import write_result
from qrobench.engine.diagnostics import record_findings
from qrobench.engine.merge import merge_results
from qrobench.engine.outcomes import decode_mask, encode_mask
from qrobench.engine.results import read_result
from qrobench.errors import QrobenchError
from qrobench.reports.columns import COLUMNS
from qrobench.reports.compare import compare_results
from qrobench.reports.console import format_result_table

N = 96
EPS = 2 / 255


def _counting(model):
    seen = []
    model.register_forward_hook(lambda m, i, o: seen.append(i[0].shape[0]))
    return model, seen


@pytest.fixture(scope="module")
def points(test_points):
    return EvalData(test_points.x[:N], test_points.y[:N], test_points.source)


@pytest.fixture(scope="module")
def runs(tiny_trained, points):
    """fgsm + ifgsm20 in one run, and the same as fgsm, then ifgsm20 continued from it; both
    attacks are deterministic, so each point meets the same attacks either way."""
    kw = dict(n=N, data=points, eps=EPS, progress=False, batch_size=32)
    full = evaluate(tiny_trained, attacks=["fgsm", "ifgsm20"], **kw)
    prior = evaluate(tiny_trained, attacks=["fgsm"], **kw)
    whole, whole_seen = _counting(copy.deepcopy(tiny_trained))
    cont, cont_seen = _counting(copy.deepcopy(tiny_trained))
    alone = evaluate(whole, attacks=["ifgsm20"], **kw)
    after = evaluate(cont, attacks=["ifgsm20"], cascade_from=prior, **kw)
    return full, prior, alone, after, sum(whole_seen), sum(cont_seen)


def _mask(r, name, seed=0):
    return decode_mask(r.per_seed[seed].outcomes[name], r.n)


def test_continued_attack_keeps_the_worst_case_and_spends_fewer_passes(runs):
    full, prior, alone, after, alone_passes, after_passes = runs
    assert full.robust_acc["fgsm"] < full.clean_acc  # fgsm breaks points, so there is something to skip
    assert (_mask(after, "ifgsm20") == (_mask(full, "fgsm") & _mask(full, "ifgsm20"))).all()  # cumulative
    assert after.worst_case_acc == full.worst_case_acc
    assert (_mask(after, "clean") == _mask(full, "clean")).all()
    assert after_passes < alone_passes
    assert after.cascade_from == {"ifgsm20": ["fgsm"]} and "cascade-from" in after.flags
    assert after.cascade is None
    assert alone.cascade_from is None and "cascade_from" not in alone.to_dict()
    assert after.cumulative_over("ifgsm20") == ["fgsm"] and after.own_attacks() == []
    assert "ifgsm20, cumulative over fgsm" in format_result_table(after)


def test_merge_joins_it_with_the_attacks_it_continued(runs, tmp_path):
    full, prior, _, after, *_ = runs
    a, b = write_result(prior, tmp_path / "fgsm.json"), write_result(after, tmp_path / "ifgsm20.json")
    merged = merge_results([a, b])
    assert merged.worst_case_acc == full.worst_case_acc
    assert merged.cascade_from == {"ifgsm20": ["fgsm"]} and "cascade-from" in merged.flags
    assert merged.robust_acc["fgsm"] == full.robust_acc["fgsm"]
    assert merged.own_attacks() == ["fgsm"]
    written = write_result(merged, tmp_path / "merged.json")
    assert read_result(written).cascade_from == {"ifgsm20": ["fgsm"]}  # survives the file


def test_merge_refuses_it_without_those_attacks_or_with_other_survivors(runs, tiny_trained, points, tmp_path):
    _, prior, _, after, *_ = runs
    b = write_result(after, tmp_path / "ifgsm20.json")
    other = evaluate(tiny_trained, attacks=["pgd20"], n=N, data=points, eps=EPS, progress=False, batch_size=32)
    with pytest.raises(QrobenchError, match="merges only together with them.*fgsm"):
        merge_results([write_result(other, tmp_path / "pgd20.json"), b])
    # an fgsm file whose survivors are not the ones ifgsm20 ran on: one survivor marked broken
    tampered = copy.deepcopy(prior)
    fgsm = _mask(prior, "fgsm")
    hit = int(np.flatnonzero(fgsm & _mask(after, "ifgsm20"))[0])
    fgsm[hit] = False
    tampered.per_seed[0].outcomes["fgsm"] = encode_mask(fgsm)
    with pytest.raises(QrobenchError, match="survive ifgsm20 but not the attacks it continued"):
        merge_results([write_result(tampered, tmp_path / "fgsm-other.json"), b])
    plain = write_result(runs[2], tmp_path / "ifgsm20-alone.json")
    with pytest.raises(QrobenchError, match="cascade_from"):  # shards or seeds: continued and plain never mix
        merge_results([plain, b])


def test_diagnostics_compare_and_reports_never_use_its_own_accuracy(runs, tiny_trained, points, tmp_path):
    _, prior, _, _, *_ = runs
    pgd_after = evaluate(tiny_trained, attacks=["pgd20"], n=N, data=points, eps=EPS, progress=False,
                         batch_size=32, cascade_from=prior)
    merged = merge_results([write_result(prior, tmp_path / "fgsm.json"),
                            write_result(pgd_after, tmp_path / "pgd20.json")])
    findings = {f.check: f for f in record_findings(merged)}
    assert findings["fgsm-beats-pgd"].status == "n/a" and "cumulative" in findings["fgsm-beats-pgd"].reason
    # compare: over both attacks it is exact; over pgd20 alone it would not be
    assert compare_results(merged, merged).attacks == ["fgsm", "pgd20"]
    with pytest.raises(QrobenchError, match="already count fgsm"):
        compare_results(merged, merged, ["pgd20"])
    column = next(c for c in COLUMNS if c.key == "{}_pct")
    cells = column.measured(types.SimpleNamespace(d=merged))
    assert set(cells) == {"fgsm"}  # pgd20's cell stays n/a, its cumulative number is not shown as its own


def test_bad_cascade_from_input_is_refused_in_one_line(runs, tiny_trained, points):
    _, prior, *_ = runs
    kw = dict(n=N, data=points, eps=EPS, progress=False, batch_size=32)
    with pytest.raises(QrobenchError, match="already holds fgsm"):
        evaluate(tiny_trained, attacks=["fgsm"], cascade_from=prior, **kw)
    with pytest.raises(QrobenchError, match="not measured under cw"):
        evaluate(tiny_trained, attacks=["pgd20"], cascade_from=prior, cascade_attacks=["cw"], **kw)
    with pytest.raises(QrobenchError, match="give it"):
        evaluate(tiny_trained, attacks=["pgd20"], cascade_attacks=["fgsm"], **kw)
    with pytest.raises(QrobenchError, match="seeds"):
        evaluate(tiny_trained, attacks=["pgd20"], cascade_from=prior, seed=3, **kw)
    with pytest.raises(QrobenchError, match="eps"):
        evaluate(tiny_trained, attacks=["pgd20"], cascade_from=prior, **{**kw, "eps": 4 / 255})
    with pytest.raises(QrobenchError, match="holds points 32–127, this run needs 0–95"):
        evaluate(tiny_trained, attacks=["pgd20"], cascade_from=dataclasses.replace(prior, first_index=32), **kw)


def test_other_clean_predictions_stop_the_run_and_drop_its_journal(runs, tiny_trained, points, tmp_path):
    _, prior, *_ = runs
    tampered = copy.deepcopy(prior)
    clean = _mask(prior, "clean")
    clean[0] = not clean[0]
    tampered.per_seed[0].outcomes["clean"] = encode_mask(clean)
    journal = tmp_path / "r.json.journal"
    with pytest.raises(QrobenchError, match="other clean predictions"):
        evaluate(tiny_trained, attacks=["pgd20"], n=N, data=points, eps=EPS, progress=False, batch_size=32,
                 cascade_from=tampered, journal=journal)
    assert not journal.exists()


def test_command_line_continues_a_randomised_model_and_merges(tiny_zoo, data_dir, tmp_path, capsys):
    base = ["run", "--model", "en8-tnn", "--n", "16", "--batch-size", "8", "--repeats", "2", "--eps", "2/255",
            "--zoo-dir", str(tiny_zoo), "--data-dir", str(data_dir), "--quiet"]
    first, second = tmp_path / "fgsm.json", tmp_path / "pgd.json"
    assert main([*base, "--attacks", "fgsm", "--output", str(first)]) == 0
    assert main([*base, "--attacks", "pgd20", "--cascade-from", str(first), "--output", str(second)]) == 0
    cont = json.loads(second.read_text())
    assert cont["cascade_from"] == {"pgd20": ["fgsm"]} and "--cascade-from" in cont["command"]
    merged = tmp_path / "m.json"
    assert main(["merge", str(first), str(second), "--output", str(merged)]) == 0
    m = read_result(merged)
    assert m.seeds == [0, 1] and m.cascade_from == {"pgd20": ["fgsm"]}
    for s in range(2):  # the worst case of the pair is the continued attack's cumulative outcome
        assert (_mask(m, "pgd20", s) == (_mask(m, "clean", s) & _mask(m, "fgsm", s) & _mask(m, "pgd20", s))).all()
    capsys.readouterr()
    other = tmp_path / "pgd-bs.json"
    argv = [a if a != "8" else "16" for a in base]  # another batch size: other noise in the clean pass
    assert main([*argv, "--attacks", "pgd20", "--cascade-from", str(first), "--output", str(other)]) == 2
    assert "batch size" in capsys.readouterr().err and not other.exists()
    assert main([*base, "--attacks", "pgd20", "--cascade-attacks", "fgsm", "--output", str(other)]) == 2
    assert "--cascade-from" in capsys.readouterr().err
