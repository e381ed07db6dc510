"""Gradient-masking diagnostics: each check fires on the sign it looks for, and only then."""

import dataclasses

import torch

from qrobench import evaluate
from qrobench.data.cifar10 import EvalData
from qrobench.engine.diagnostics import combine, diagnose_result, flags, probe, record_findings
from qrobench.engine.results import Result, Spread

SMALL_EPS = 2 / 255


def _result(**acc) -> Result:
    std = acc.pop("std", {})
    return Result(model="m", n=1000, eps=8 / 255, clean_acc=0.7, robust_acc=acc,
                  worst_case_acc=min(acc.values()), attacks={a: {} for a in acc},
                  std=Spread(robust_acc=std), repeats=3 if std else 1, stochastic=bool(std))


def _status(findings, check):
    return next(f.status for f in findings if f.check == check)


def test_record_checks_fire_on_the_signs_they_look_for():
    ok = record_findings(_result(fgsm=0.45, pgd20=0.40, square=0.55))
    assert flags(ok) == []
    masked = record_findings(_result(fgsm=0.40, pgd20=0.50, square=0.30))
    assert {"fgsm-beats-pgd", "black-box-beats-white-box"} <= set(flags(masked))
    assert _status(record_findings(_result(fgsm=0.004, pgd20=0.0)), "not-robust") == "flag"
    assert _status(ok, "eps-not-monotone") == "n/a"
    curve = {2 / 255: 0.6, 4 / 255: 0.5, 8 / 255: 0.505, 16 / 255: 0.3}  # +0.5 pp: within the tolerance
    assert _status(record_findings(_result(pgd20=0.4), curve), "eps-not-monotone") == "pass"
    rising = {2 / 255: 0.6, 8 / 255: 0.4, 16 / 255: 0.45}
    assert _status(record_findings(_result(pgd20=0.4), rising), "eps-not-monotone") == "flag"


def test_a_gap_inside_the_seed_spread_is_not_flagged():
    noisy = _result(fgsm=0.45, pgd20=0.47, **{"eot-pgd20": 0.44}, std={"fgsm": 0.02, "pgd20": 0.02, "eot-pgd20": 0.02})
    f = record_findings(noisy)
    assert _status(f, "fgsm-beats-pgd") == "pass" and _status(f, "eot-gap") == "pass"
    assert _status(f, "stochastic") == "flag"  # random at test time is always reported
    wide = dataclasses.replace(noisy, robust_acc={"fgsm": 0.45, "pgd20": 0.55, "eot-pgd20": 0.44})
    assert _status(record_findings(wide), "fgsm-beats-pgd") == "flag"
    assert _status(record_findings(wide), "eot-gap") == "flag"


class _InputQuantized(torch.nn.Module):
    """A planted gradient mask: the input is rounded to 4 grey levels before the network, so
    the input gradient is exactly zero and gradient attacks cannot move."""

    def __init__(self, net):
        super().__init__()
        self.net = net

    def forward(self, x):
        return self.net(torch.round(x * 3) / 3)


def test_a_planted_masked_model_is_flagged_and_the_plain_one_is_not(tiny_trained, test_points):
    x, y = test_points.x[:60], test_points.y[:60]
    plain = flags(probe(tiny_trained, x, y))
    assert "zero-gradients" not in plain and "large-eps-not-broken" not in plain
    masked = _InputQuantized(tiny_trained).eval()
    found = flags(probe(masked, x, y))
    assert "zero-gradients" in found and "large-eps-not-broken" in found


def test_diagnosis_is_stored_in_the_record_and_combines_record_and_probe(tiny_trained, test_points):
    masked = _InputQuantized(tiny_trained).eval()
    pts = EvalData(test_points.x[:40], test_points.y[:40], test_points.source)
    r = evaluate(masked, attacks=["fgsm", "pgd20"], n=40, data=pts, eps=SMALL_EPS, progress=False)
    assert "zero-gradients:pgd20" in r.flags  # the engine saw it too
    findings = diagnose_result(r, masked, pts, command="test", probe_points=40)
    assert {"zero-gradients", "large-eps-not-broken"} <= set(r.diagnostics["flags"])
    assert r.diagnostics["findings"] == [f.as_dict() for f in findings]
    assert len({f.check for f in findings}) == len(findings)  # one finding per check
    probe_pass = [f for f in combine(record_findings(r), []) if f.check == "zero-gradients"]
    assert probe_pass[0].status == "flag"  # a record flag stands even without a probe
