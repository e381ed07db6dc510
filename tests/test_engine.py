"""Correctness of the attack battery and the evaluation engine on a small trained model."""

import pytest
import torch

from qrobench.attacks import create_attack, list_attacks
from qrobench.data.cifar10 import EvalData
from qrobench.engine import evaluate
from qrobench.errors import QrobenchError, UnknownNameError
from qrobench.models import create_model

SMALL_EPS = 2 / 255  # at 8/255 a naturally trained model is at 0 % under every attack


def _subset(points: EvalData, n: int) -> EvalData:
    return EvalData(points.x[:n], points.y[:n], points.source)


def test_every_attack_in_the_protocol_is_registered():
    assert set(list_attacks()) >= {"fgsm", "pgd20", "ifgsm20", "cw", "cw-paper", "apgd-ce", "apgd-t",
                                   "fab-t", "square", "aa", "aa-rand", "eot-pgd20", "transfer"}


def test_battery_respects_clean_and_worst_case(tiny_trained, test_points):
    r = evaluate(tiny_trained, attacks=["fgsm", "pgd20", "cw", "cw-paper"], n=100,
                 data=_subset(test_points, 100), eps=SMALL_EPS, progress=False)
    assert 0.3 < r["clean_acc"] < 0.8
    for a, acc in r["robust_acc"].items():
        assert acc <= r["clean_acc"], a
        assert r["worst_case_acc"] <= acc
    assert r["robust_acc"]["pgd20"] < r["robust_acc"]["fgsm"]  # iterative beats one step
    assert r["robust_acc"]["cw-paper"] > r["robust_acc"]["pgd20"]  # the paper's C&W is weak
    assert r["attacks"]["pgd20"]["steps"] == 20 and r["attacks"]["pgd20"]["step_size"] == 2 / 255
    for key in ("model", "card_sha256", "dataset", "n", "eps", "attacks", "clean_acc", "robust_acc",
                "worst_case_acc", "sparsity", "channel_sparsity", "size_bytes", "seed", "repeats",
                "versions", "device", "wall_time_s", "data_source"):
        assert key in r
    assert r["n"] == 100 and r["repeats"] == 1 and not r["stochastic"]


def test_pgd20_at_least_as_strong_as_torchattacks(tiny_trained, test_points):
    torchattacks = pytest.importorskip("torchattacks")
    pts = _subset(test_points, 120)
    ours = evaluate(tiny_trained, attacks=["pgd20"], n=120, data=pts, eps=SMALL_EPS, progress=False)
    ta = torchattacks.PGD(tiny_trained, eps=SMALL_EPS, alpha=2 / 255, steps=20, random_start=True)
    torch.manual_seed(0)
    x_adv = ta(pts.x, pts.y)
    with torch.no_grad():
        ta_acc = float((tiny_trained(x_adv).argmax(1) == pts.y).float().mean())
    # same settings; ours keeps mid-way successes, so it may only be stronger (tolerance: 2 points)
    assert ours["robust_acc"]["pgd20"] <= ta_acc + 2 / 120
    assert ta_acc < ours["clean_acc"]


def test_attacks_stay_in_the_eps_ball_and_image_range(tiny_trained, test_points):
    x, y = test_points.x[:8], test_points.y[:8]
    for name in ("fgsm", "pgd20", "ifgsm20", "cw", "cw-paper", "eot-pgd20", "apgd-ce"):
        atk = create_attack(name, tiny_trained, eps=SMALL_EPS)
        x_adv = atk.perturb(x, y, generator=torch.Generator().manual_seed(0))
        assert (x_adv - x).abs().max() <= SMALL_EPS + 1e-6, name
        assert x_adv.min() >= 0 and x_adv.max() <= 1, name


def test_deterministic_model_gives_identical_numbers_twice(tiny_trained, test_points):
    pts = _subset(test_points, 60)
    a = evaluate(tiny_trained, attacks=["pgd20", "fgsm"], n=60, data=pts, eps=SMALL_EPS, seed=3, progress=False)
    b = evaluate(tiny_trained, attacks=["pgd20", "fgsm"], n=60, data=pts, eps=SMALL_EPS, seed=3, progress=False)
    assert a["robust_acc"] == b["robust_acc"] and a["clean_acc"] == b["clean_acc"]


def test_stochastic_model_is_repeatable_and_reports_mean_and_std(test_points):
    torch.manual_seed(0)
    m = create_model("preact_resnet", depth=8, ensemble=2, noise_coef=0.5)
    pts = _subset(test_points, 40)
    kw = dict(attacks=["fgsm"], n=40, data=pts, eps=SMALL_EPS, progress=False, repeats=3)
    a = evaluate(m, seed=1, **kw)
    b = evaluate(m, seed=1, **kw)
    assert a["stochastic"] and a["repeats"] == 3 and "stochastic" in a["flags"] and "no-eot" in a["flags"]
    assert a["clean_acc"] == b["clean_acc"] and a["robust_acc"] == b["robust_acc"]
    assert len(a["per_seed"]) == 3 and "std" in a
    assert len({p["clean_acc"] for p in a["per_seed"]}) > 1 or a["std"]["clean_acc"] == 0


def test_autoattack_parts_run_on_a_few_points(tiny_trained, test_points):
    pts = _subset(test_points, 12)
    r = evaluate(tiny_trained, attacks=["apgd-ce", "apgd-t", "square"], n=12, data=pts,
                 eps=SMALL_EPS, progress=False)
    assert r["robust_acc"]["apgd-ce"] <= r["clean_acc"]
    assert r["attacks"]["square"]["n_queries"] == 5000
    assert r["attacks"]["apgd-t"]["implementation"] == "pyautoattack.APGDAttack_targeted"


@pytest.mark.slow
def test_full_autoattack_and_fab(tiny_trained, test_points):
    pts = _subset(test_points, 10)
    r = evaluate(tiny_trained, attacks=["aa", "fab-t", "aa-rand"], n=10, data=pts, eps=SMALL_EPS,
                 progress=False)
    assert r["robust_acc"]["aa"] <= r["clean_acc"]


def test_transfer_attack_uses_a_surrogate(tiny_trained, test_points):
    torch.manual_seed(1)
    other = create_model("preact_resnet", depth=8).eval()
    pts = _subset(test_points, 50)
    r = evaluate(tiny_trained, attacks=["transfer", "pgd20"], n=50, data=pts, eps=SMALL_EPS,
                 progress=False, attack_options={"transfer": {"surrogate": other}})
    assert r["robust_acc"]["transfer"] >= r["robust_acc"]["pgd20"]  # black-box is weaker here
    assert r["attacks"]["transfer"]["crafting"] == "pgd20"


def test_transfer_from_a_randomised_surrogate_is_repeatable(tiny_trained, test_points):
    torch.manual_seed(1)
    noisy = create_model("preact_resnet", depth=8, ensemble=2, noise_coef=0.5).eval()
    pts = _subset(test_points, 16)
    atk = create_attack("transfer", tiny_trained, eps=8 / 255, surrogate=noisy)
    runs = []
    for global_seed in (0, 1):  # the global RNG must not matter, only the attack's generator
        torch.manual_seed(global_seed)
        runs.append(atk.perturb(pts.x, pts.y, generator=torch.Generator().manual_seed(5)))
    assert torch.equal(runs[0], runs[1])
    other = atk.perturb(pts.x, pts.y, generator=torch.Generator().manual_seed(6))
    assert not torch.equal(runs[0], other)


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
