"""Gradient attacks against a model that is random at test time (docs/protocol.md §6.4).

A planted model with a known answer: two classes, the margin K·(mean(x) − 0.5 + ε/2) plus
Feynman-Kac noise of std ≈ 1 on it, every point the constant image 0.5. With K = 2/ε the clean
margin is +1 and the far corner of the ε-ball (every pixel −ε) has margin −1, so an attack that
reaches it leaves a point correct with probability Φ(−1) ≈ 16 %. An attack that stops at the
first iterate one noise draw misclassifies stops near margin 0, where the scoring pass's fresh
draw is right about half the time. No weights are trained, so the bands hold on any CPU.
"""

import torch
import torch.nn as nn

from qrobench import evaluate
from qrobench.attacks import create_attack
from qrobench.data.cifar10 import EvalData
from qrobench.engine.diagnostics import Finding, findings_of, record_findings
from qrobench.models.noise import FeynmanKacNoise

EPS = 8 / 255
N = 200


class NoisyThreshold(nn.Module):
    def __init__(self):
        super().__init__()
        self.noise = FeynmanKacNoise(1.0)

    def forward(self, x):
        m = (2 / EPS) * (x.flatten(1).mean(1) - 0.5 + EPS / 2)
        u = torch.tensor([1.0, -1.0], device=x.device).expand(len(x), 2)
        jitter = (self.noise(u) - u)[:, 0]  # std(u) ≈ 1, so the jitter is ≈ N(0, 1)
        return torch.stack([m + jitter, torch.zeros_like(m)], 1)


def _points() -> EvalData:
    return EvalData(torch.full((N, 3, 8, 8), 0.5), torch.zeros(N, dtype=torch.long), "planted")


def _finding(r, check):
    return next(f for f in record_findings(r) if f.check == check)


def test_randomised_model_gets_the_last_iterate_and_is_broken():
    r = evaluate(NoisyThreshold(), attacks=["pgd20", "cw", "eot-pgd20"], n=N, data=_points(), repeats=1,
                 eot_iter=2, progress=False)
    assert r.stochastic
    assert 0.75 <= r.clean_acc <= 0.92  # Φ(1) = 0.84
    for a in ("pgd20", "cw", "eot-pgd20"):
        assert r.attacks[a]["returns"] == "last iterate", a
        assert r.robust_acc[a] <= 0.25, a  # expected ≈ 0.84 · Φ(−1) = 0.13
    assert _finding(r, "noisy-early-stop").status == "pass"


def test_first_success_on_a_randomised_model_overestimates_and_is_flagged():
    r = evaluate(NoisyThreshold(), attacks=["pgd20"], n=N, data=_points(), repeats=1, progress=False,
                 attack_options={"pgd20": {"returns": "first-success"}})
    assert r.attacks["pgd20"]["returns"] == "first misclassified iterate, else last"
    assert r.robust_acc["pgd20"] >= 0.35  # measured 0.47-0.49 on seeds 0-2: stopped on the boundary
    f = _finding(r, "noisy-early-stop")
    assert f.status == "flag" and "pgd20" in f.reason
    # a diagnosis stored before the check existed still gets it (the leaderboard reads findings_of)
    r.diagnostics = {"findings": [Finding("not-robust", "pass", "stored").as_dict()]}
    got = {g.check: g for g in findings_of(r)}
    assert got["not-robust"].reason == "stored" and got["noisy-early-stop"].status == "flag"


def test_deterministic_model_keeps_first_success():
    net = nn.Sequential(nn.Flatten(), nn.Linear(12, 2))
    assert create_attack("pgd20", net).settings()["returns"] == "first misclassified iterate, else last"
    assert create_attack("cw", net, randomised=True).settings()["returns"] == "last iterate"
    assert create_attack("pgd20", NoisyThreshold()).settings()["returns"] == "last iterate"
    assert create_attack("pgd20", NoisyThreshold(), returns="first-success").returns == "first-success"
