"""--cascade: each attack only on the points the earlier ones left standing (AutoAttack-style)."""

import pytest
import torch

from qrobench import evaluate
from qrobench.data.cifar10 import EvalData
from qrobench.engine import write_result
from qrobench.engine.diagnostics import record_findings
from qrobench.engine.merge import merge_results
from qrobench.engine.outcomes import decode_mask
from qrobench.errors import QrobenchError

N = 96


def _counting(model):
    """The model, and a list that grows by the batch size of every forward pass."""
    seen = []
    model.register_forward_hook(lambda m, i, o: seen.append(i[0].shape[0]))
    return model, seen


@pytest.fixture(scope="module")
def runs(tiny_trained, test_points):
    import copy

    pts = EvalData(test_points.x[:N], test_points.y[:N], test_points.source)
    kw = dict(attacks=["fgsm", "ifgsm20"], n=N, data=pts, eps=2 / 255, progress=False, batch_size=32)
    full_model, full_seen = _counting(copy.deepcopy(tiny_trained))
    casc_model, casc_seen = _counting(copy.deepcopy(tiny_trained))
    full = evaluate(full_model, **kw)
    casc = evaluate(casc_model, cascade=True, **kw)
    return full, casc, sum(full_seen), sum(casc_seen)


def test_cascade_keeps_the_worst_case_and_spends_fewer_passes(runs):
    full, casc, full_passes, casc_passes = runs
    # both attacks are deterministic (no random start), so every point meets the same attacks
    assert casc.worst_case_acc == full.worst_case_acc
    assert casc.per_seed[0].outcomes["fgsm"] == full.per_seed[0].outcomes["fgsm"]
    full_worst = decode_mask(full.per_seed[0].outcomes["fgsm"], N) & decode_mask(full.per_seed[0].outcomes["ifgsm20"], N)
    assert (decode_mask(casc.per_seed[0].outcomes["ifgsm20"], N) == full_worst).all()  # cumulative mask
    assert casc.robust_acc["ifgsm20"] == casc.worst_case_acc <= casc.robust_acc["fgsm"]
    # the points FGSM broke are not attacked again, which a real test set makes visible
    assert full.robust_acc["fgsm"] < full.clean_acc
    assert casc_passes < full_passes
    assert casc.cascade is True and "cascade" in casc.flags
    assert full.cascade is None and "cascade" not in full.flags and "cascade" not in full.to_dict()


def test_cascade_results_refuse_attack_merges_and_per_attack_diagnostics(runs, tmp_path, tiny_trained,
                                                                         test_points):
    full, casc, *_ = runs
    findings = {f.check: f for f in record_findings(casc)}
    assert findings["fgsm-beats-pgd"].status == "n/a" and "cumulative" in findings["fgsm-beats-pgd"].reason
    a = write_result(casc, tmp_path / "casc.json")
    pts = EvalData(test_points.x[:N], test_points.y[:N], test_points.source)
    other = evaluate(tiny_trained, attacks=["pgd20"], n=N, data=pts, eps=2 / 255, progress=False,
                     batch_size=32, cascade=True)
    b = write_result(other, tmp_path / "pgd.json")
    with pytest.raises(QrobenchError, match="--cascade run"):
        merge_results([a, b])
    c = write_result(full, tmp_path / "full.json")
    with pytest.raises(QrobenchError, match="cascade"):  # a seed merge of cascade and plain runs
        merge_results([a, c])
    assert torch.equal(torch.as_tensor(decode_mask(casc.per_seed[0].outcomes["clean"], N)),
                       torch.as_tensor(decode_mask(full.per_seed[0].outcomes["clean"], N)))
