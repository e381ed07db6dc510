"""The Bit-Flip Attack: each committed flip is one bit of one stored word, the search raises the
attack loss, the record holds the flips and the trajectory, and the model comes back intact."""

import pytest
import torch

from qrobench.data.cifar10 import EvalData, load_cifar10_train
from qrobench.errors import QrobenchError
from qrobench.models.registry import create_model
from qrobench.threats.bit_flip import attack_batch, bit_flip_attack
from qrobench.threats.codes_io import SIGN_MAGNITUDE, encode


@pytest.fixture(scope="module")
def setup(tiny_trained, test_points, data_dir):
    model = create_model("preact_resnet", depth=8)
    model.load_state_dict(tiny_trained.state_dict())
    model.eval()
    x, y = attack_batch(load_cifar10_train(data_dir), n=64)
    return model, x, y, EvalData(test_points.x[:100], test_points.y[:100], test_points.source)


def test_flips_are_single_bits_and_raise_the_loss(setup):
    model, x, y, test = setup
    with torch.no_grad():
        before = model(test.x)
    r = bit_flip_attack(model, x, y, test, cap=4)
    t = r.weight_threat["trajectory"]
    assert 1 <= len(t) <= 4 and r.weight_threat["flips_made"] == len(t)
    for step in t:  # one bit of one int8 word: the two codes differ in exactly that bit
        old, new = torch.tensor(step["code"][0]), torch.tensor(step["code"][1])
        assert int(encode(old, 8, "twos-complement") ^ encode(new, 8, "twos-complement")) == 1 << step["bit"]
    assert t[-1]["attack_loss"] > t[0]["attack_loss"] * 0.99
    assert r.threat_model == "bit-flip" and "int8" in r.attacks["bfa"]["stored"]
    assert r.robust_acc["bfa"] <= r.clean_acc
    assert r.clean_time_s > 0 and r.wall_time_s["bfa"] > 0
    with torch.no_grad():  # restored: the float weights, not the int8 post-training codes the threat stored
        after = model(test.x)
    assert torch.equal(after, before)


def test_a_target_above_the_clean_accuracy_needs_no_flip(setup):
    model, x, y, test = setup
    r = bit_flip_attack(model, x, y, test, cap=3, target=0.99)
    assert r.weight_threat["flips"] == 0 and not r.weight_threat["capped"] and r.flags == []
    with pytest.raises(QrobenchError, match="integer codes"):
        bit_flip_attack(model, x, y, test, float_as="float32")


def test_sign_magnitude_flips_stay_in_a_ternary_range(test_points):
    from qrobench.quant.layers import set_quant_mode
    from qrobench.threats.codes_io import stored_layers

    torch.manual_seed(0)
    m = create_model("preact_resnet", depth=8, precision="tnn").eval()
    set_quant_mode(m, "deployed")
    x, y = test_points.x[:32], test_points.y[:32]
    r = bit_flip_attack(m, x, y, EvalData(test_points.x[:50], test_points.y[:50], "t"), cap=3, target=0.01)
    assert r.weight_threat["capped"] and "bfa-capped" in r.flags and r.weight_threat["flips"] is None
    assert all(abs(s["code"][1]) <= 1 for s in r.weight_threat["trajectory"])
    layers, what = stored_layers(m)
    assert what.startswith("deployed codes") and layers[0].format == SIGN_MAGNITUDE


def test_the_finding_orders_flips_by_bits(tmp_path):
    import pandas as pd

    from qrobench.reports.studies.findings import _bit_flip_finding

    rows = [{"model": "a8", "precision": "8bit", "bits": 8.0, "stored": "codes", "clean_pct": 60.0, "flips": 10,
             "cap": 200, "final_pct": 10.0, "target_pct": 11.0, "n": 1000},
            {"model": "b1", "precision": "bnn", "bits": 1.0, "stored": "codes", "clean_pct": 55.0, "flips": None,
             "cap": 200, "final_pct": 30.0, "target_pct": 11.0, "n": 1000}]
    f = _bit_flip_finding(pd.DataFrame(rows))
    assert f.verdict == "holds" and any("> 200 flips" in e for e in f.evidence)
    rows[1]["flips"] = 5  # the binary model broke faster
    assert _bit_flip_finding(pd.DataFrame(rows)).verdict == "does not hold"
    assert _bit_flip_finding(pd.DataFrame([])).verdict == "not tested"
