"""Correctness of the attack battery and the evaluation engine on a small trained model."""

import statistics

import pytest
import torch

from qrobench import evaluate
from qrobench.data.cifar10 import EvalData
from qrobench.errors import QrobenchError, UnknownNameError
from qrobench.models import create_model

SMALL_EPS = 2 / 255  # at 8/255 a naturally trained model is at 0 % under every attack


def _subset(points: EvalData, n: int) -> EvalData:
    return EvalData(points.x[:n], points.y[:n], points.source)


def test_battery_respects_clean_and_worst_case(tiny_trained, test_points):
    r = evaluate(tiny_trained, attacks=["fgsm", "pgd20", "cw", "cw-paper"], n=100,
                 data=_subset(test_points, 100), eps=SMALL_EPS, progress=False)
    assert 0.3 < r["clean_acc"] < 0.8
    for a, acc in r["robust_acc"].items():
        assert acc <= r["clean_acc"], a
        assert r["worst_case_acc"] <= acc
    # Iterative vs one step is not a theorem point by point, so no strict inequality between two
    # attacks on a model trained in the test run (its weights differ by CPU): pgd20 may miss a
    # point fgsm breaks only rarely (measured: 0-1 of 100 on 3 fixture seeds, 1 and 2 threads),
    # and a broken pgd20 (no steps, wrong sign) would leave it near the clean accuracy.
    fgsm, pgd = (r.masks(a)[0] for a in ("fgsm", "pgd20"))
    assert (pgd & ~fgsm).mean() <= 0.03
    assert r["robust_acc"]["pgd20"] <= r["robust_acc"]["fgsm"] + 0.03
    assert r["robust_acc"]["pgd20"] < r["clean_acc"] - 0.05  # pgd20 breaks something at 2/255
    assert r["robust_acc"]["cw-paper"] >= r["robust_acc"]["pgd20"] - 0.03  # the paper's C&W is weak
    assert r["attacks"]["pgd20"]["steps"] == 20 and r["attacks"]["pgd20"]["step_size"] == 2 / 255
    assert r["threat_model"] == "linf" and r["dataset"] == "cifar10" and r["norm"] == "Linf"
    for key in ("model", "card_sha256", "dataset", "threat_model", "n", "eps", "attacks", "clean_acc", "robust_acc",
                "worst_case_acc", "sparsity", "channel_sparsity", "size_bytes", "seed", "repeats",
                "versions", "device", "wall_time_s", "data_source"):
        assert key in r
    assert r["n"] == 100 and r["repeats"] == 1 and not r["stochastic"]


def test_deterministic_model_gives_identical_numbers_twice(tiny_trained, test_points):
    pts = _subset(test_points, 60)
    a = evaluate(tiny_trained, attacks=["pgd20", "fgsm"], n=60, data=pts, eps=SMALL_EPS, seed=3, progress=False)
    b = evaluate(tiny_trained, attacks=["pgd20", "fgsm"], n=60, data=pts, eps=SMALL_EPS, seed=3, progress=False)
    assert a["robust_acc"] == b["robust_acc"] and a["clean_acc"] == b["clean_acc"]


def _noisy_copy(trained, coef: float):
    """The trained ResNet-8 with Feynman-Kac noise switched on: random at test time, yet accurate."""
    m = create_model("preact_resnet", depth=8, noise_coef=coef)
    m.load_state_dict(trained.state_dict())
    return m.eval()


def test_stochastic_model_is_repeatable_and_reports_mean_and_std(tiny_trained, test_points):
    m = _noisy_copy(tiny_trained, 0.3)
    kw = dict(attacks=["fgsm"], n=100, data=_subset(test_points, 100), eps=SMALL_EPS, progress=False)
    a = evaluate(m, seed=1, **kw)
    b = evaluate(m, seed=1, **kw)
    assert a.stochastic and a.repeats == 3 and "stochastic" in a.flags and "no-eot" in a.flags
    assert a.seeds == [1, 2, 3]
    assert a.clean_acc == b.clean_acc and a.robust_acc == b.robust_acc  # seeded: repeatable
    per_seed = [p.clean_acc for p in a.per_seed]
    # the noise really acts at test time: two passes of the same points give other logits (whether it
    # also moves the clean accuracy of this tiny model depends on its trained weights, i.e. the CPU)
    x = kw["data"].x[:8]
    with torch.no_grad():
        assert not torch.equal(m(x), m(x))
    assert a.clean_acc == pytest.approx(statistics.fmean(per_seed))
    assert a.std.clean_acc == pytest.approx(statistics.stdev(per_seed))
    c = evaluate(m, seed=4, **kw)  # other seeds, other noise
    assert [p.clean_acc for p in c.per_seed] != per_seed


def test_bad_configuration_is_rejected(tiny_trained, test_points):
    with pytest.raises(UnknownNameError, match="pgd20"):
        evaluate(tiny_trained, attacks=["pgd2000"], n=10, data=test_points)
    with pytest.raises(QrobenchError, match="exceeds"):
        evaluate(tiny_trained, attacks=["fgsm"], n=10_000, data=test_points)
    with pytest.raises(QrobenchError, match="twice"):
        evaluate(tiny_trained, attacks=["fgsm", "fgsm"], n=10, data=test_points)


class _ConstantClassifier(torch.nn.Module):
    """Predicts class 0 whatever the input: its accuracy is the share of label 0, and no attack
    can change a prediction."""

    def __init__(self):
        super().__init__()
        self.fc = torch.nn.Linear(3 * 32 * 32, 10)
        torch.nn.init.zeros_(self.fc.weight)
        with torch.no_grad():
            self.fc.bias.copy_(torch.arange(10, 0, -1, dtype=torch.float32))

    def forward(self, x):
        return self.fc(x.flatten(1))


def test_accuracies_are_exact_fractions_so_robust_never_exceeds_clean():
    # 32 of 100 labels are 0: float32's mean gives 0.3199999928 while 32/100 is 0.32, so a
    # battery that mixes the two reports robust > clean for an attack that changes nothing.
    y = torch.tensor([0] * 32 + [1] * 68)
    data = EvalData(torch.rand(100, 3, 32, 32, generator=torch.Generator().manual_seed(0)), y, "synthetic")
    r = evaluate(_ConstantClassifier(), attacks=["fgsm"], n=100, data=data, eps=SMALL_EPS, progress=False)
    assert r["clean_acc"] == 32 / 100
    assert r["robust_acc"]["fgsm"] == r["clean_acc"] == r["worst_case_acc"]


class _RecordsFp32Precision(torch.nn.Module):
    """A linear classifier that notes the conv/matmul fp32 precision in force when it runs."""

    def __init__(self):
        super().__init__()
        self.fc = torch.nn.Linear(3 * 32 * 32, 10)
        self.seen = set()

    def forward(self, x):
        self.seen.add((torch.backends.cudnn.conv.fp32_precision, torch.backends.cuda.matmul.fp32_precision))
        return self.fc(x.flatten(1))


def test_evaluation_runs_in_full_fp32_and_restores_the_callers_tf32_setting(test_points):
    conv, matmul = torch.backends.cudnn.conv, torch.backends.cuda.matmul
    old = conv.fp32_precision, matmul.fp32_precision
    conv.fp32_precision = matmul.fp32_precision = "tf32"  # what a user may have turned on for training
    try:
        m = _RecordsFp32Precision()
        evaluate(m, attacks=["fgsm"], n=20, data=_subset(test_points, 20), eps=SMALL_EPS, progress=False)
        assert m.seen == {("ieee", "ieee")}
        assert (conv.fp32_precision, matmul.fp32_precision) == ("tf32", "tf32")
    finally:
        conv.fp32_precision, matmul.fp32_precision = old
