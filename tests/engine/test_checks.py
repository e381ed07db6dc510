"""The checks of issue #27 (AutoAttack's checks.py, Pintor et al., Athalye et al.), each tripped by
a planted model built here (tiny, untrained, CPU, seconds) and not tripped by the plain one.

Labels are the plain model's own predictions, so every probe point starts clean-correct and no
test depends on trained weights."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
import torch.nn as nn

from qrobench.engine.diagnostics import (
    RANDOM_SAMPLES,
    SQUARE_GAP_PP,
    _autograd_calls,
    flags,
    probe,
    random_ball_finding,
    record_findings,
)
from qrobench.engine.results import Result, SeedResult

LEVELS = 15  # the planted input quantizer: 16 grey levels, round(x * 15) / 15


def _net() -> nn.Module:
    g = torch.Generator().manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 8, 3, stride=2, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(4),
                        nn.Flatten(), nn.Linear(128, 10))
    with torch.no_grad():
        for p in net.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.3)
    return net.eval()


class _Wrap(nn.Module):
    def __init__(self, net, kind: str):
        super().__init__()
        self.net, self.kind = net, kind

    def forward(self, x):
        if self.kind == "hard":  # hard rounding of the input: zero gradient, a step function
            x = torch.round(x * LEVELS) / LEVELS
        elif self.kind == "ste":  # the same forward, straight-through gradient
            x = x + (torch.round(x * LEVELS) / LEVELS - x).detach()
        elif self.kind == "dropout":  # random at test time: dropout left on in eval mode
            x = nn.functional.dropout(x, 0.2, training=True)
        elif self.kind == "dynamic":  # a dynamic defence: one gradient step inside the forward pass
            with torch.inference_mode(False), torch.enable_grad():  # also under the engine's inference mode
                xr = x.clone().requires_grad_(True)
                (g,) = torch.autograd.grad(self.net(xr).logsumexp(1).sum(), xr)
            x = (x - 0.01 * g.sign()).clamp(0, 1)
        return self.net(x)


def _points(model, n=24):
    x = torch.rand(n, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        y = model(x).argmax(1)
    return x, y


def _status(findings, check):
    return next(f.status for f in findings if f.check == check)


@pytest.fixture(scope="module")
def probes():
    """The probe of the plain model and of each planted one (one run each, shared by the tests)."""
    net = _net()
    out = {}
    for kind in ("plain", "hard", "ste", "dropout", "dynamic"):
        model = _Wrap(net, kind).eval()
        x, y = _points(_Wrap(net, "hard" if kind in ("hard", "ste") else "plain"))
        out[kind] = probe(model, x, y)
    return out


def test_stochastic_tests_the_model_not_the_record(probes):
    assert _status(probes["dropout"], "stochastic") == "flag"  # the record (stochastic=False) says otherwise
    assert "says deterministic" in next(f.reason for f in probes["dropout"] if f.check == "stochastic")
    for kind in ("plain", "hard", "ste", "dynamic"):
        assert _status(probes[kind], "stochastic") == "pass", kind


def test_a_forward_pass_that_computes_gradients_is_flagged(probes):
    assert _status(probes["dynamic"], "forward-calls-backward") == "flag"
    for kind in ("plain", "hard", "ste", "dropout"):
        assert _status(probes[kind], "forward-calls-backward") == "pass", kind


def test_the_autograd_counter_sees_backward_and_a_private_grad_reference():
    grad = torch.autograd.grad  # held before the counter patches the module
    x = torch.ones(3, requires_grad=True)
    with _autograd_calls() as calls:
        (x * x).sum().backward()
    assert calls["calls"] >= 1
    with _autograd_calls() as calls:
        grad((x * x).sum(), x)  # seen through the saved tensors of x * x
    assert calls == {"calls": 0, "unpacked": 2} and torch.autograd.grad is grad  # and the original is back


def test_hard_rounding_trips_zero_gradients_and_unstable_predictions_and_ste_neither(probes):
    found = set(flags(probes["hard"]))
    assert {"zero-gradients", "unstable-predictions"} <= found
    for kind in ("plain", "ste"):
        assert _status(probes[kind], "zero-gradients") == "pass", kind
        assert _status(probes[kind], "unstable-predictions") == "pass", kind


def test_one_zero_gradient_point_flags():
    """AutoAttack's rule: any clean-correct point whose gradient is zero."""
    net = _net()

    class OneDead(nn.Module):  # the first point's input is cut off from the network
        def forward(self, x):
            keep = torch.ones(len(x), 1, 1, 1)
            keep[0] = 0
            return net(x * keep + x.detach() * (1 - keep))

    x, y = _points(net)
    found = probe(OneDead(), x, y)
    assert _status(found, "zero-gradients") == "flag"
    assert next(f.reason for f in found if f.check == "zero-gradients").startswith(f"{100 / len(x):.0f} % of {len(x)}")


def _result(masks: dict[str, np.ndarray], **kw) -> Result:
    n = len(masks["clean"])
    clean = masks.pop("clean")
    seed = SeedResult.from_masks(0, clean, masks)
    r = Result(model="m", n=n, eps=8 / 255, attacks={a: {} for a in masks}, per_seed=[seed], **kw)
    return r.summarize()


def test_square_beating_the_white_box_attacks_point_by_point_is_flagged():
    n = 1000
    clean = np.zeros(n, bool)
    clean[:700] = True
    pgd = clean.copy()
    pgd[:300] = False  # pgd20 breaks points 0-299
    cw = clean.copy()
    cw[250:350] = False  # cw breaks 250-349: white-box worst case 35 %
    square = clean.copy()
    square[:100] = False  # square breaks only points the white-box attacks broke
    ok = _result({"clean": clean, "pgd20": pgd, "cw": cw, "square": square.copy()})
    assert _status(record_findings(ok), "square-beats-white-box") == "pass"
    # 2 more points (0.2 pp) are within the threshold, 3 more (0.3 pp) are beyond it
    for extra, status in ((2, "pass"), (3, "flag")):
        sq = square.copy()
        sq[400:400 + extra] = False
        r = _result({"clean": clean, "pgd20": pgd, "cw": cw, "square": sq})
        assert r.robust_acc["square"] > r.robust_acc["pgd20"]  # square is weaker than pgd20 on its own
        assert _status(record_findings(r), "square-beats-white-box") == status, extra
    assert SQUARE_GAP_PP == 0.2
    # aa runs Square inside, so it is not a white-box attack here; without outcomes: n/a
    with_aa = _result({"clean": clean, "aa": pgd, "square": square})
    with_aa.attacks["aa"] = {"attacks": ["apgd-ce", "apgd-t", "fab-t", "square"]}
    assert _status(record_findings(with_aa), "square-beats-white-box") == "n/a"
    no_outcomes = dataclasses.replace(ok, per_seed=[dataclasses.replace(ok.per_seed[0], outcomes=None)])
    assert _status(record_findings(no_outcomes), "square-beats-white-box") == "n/a"


def test_random_points_in_the_ball_that_beat_the_attacks_are_flagged():
    net = _net()
    x, y = _points(net, 12)
    n = len(x)
    clean = np.ones(n, bool)
    # the record claims every point robust at ε = 1 (the whole image cube): chance breaks some
    claims = _result({"clean": clean, "pgd20": clean.copy()}, seed=0)
    claims = dataclasses.replace(claims, eps=1.0)
    f = random_ball_finding(net, x, y, claims)
    assert f.status == "flag" and f"{RANDOM_SAMPLES} uniform draws" in f.reason
    # at ε = 0 every draw is the clean point, which the model classifies correctly
    f0 = random_ball_finding(net, x, y, dataclasses.replace(claims, eps=0.0))
    assert f0.status == "pass" and "break 0 of the 12" in f0.reason
    # points the attacks broke are not sampled; a randomised model is not judged by chance draws
    broken = _result({"clean": clean, "pgd20": np.zeros(n, bool)}, seed=0)
    assert random_ball_finding(net, x, y, dataclasses.replace(broken, eps=1.0)).status == "n/a"
    assert random_ball_finding(net, x, y, dataclasses.replace(claims, stochastic=True)).status == "n/a"


def test_diagnose_result_runs_the_new_checks_and_stores_their_flags():
    """What ``qrobench diagnose`` and ``submit`` store: the planted hard-rounding model's flags."""
    from qrobench.data.cifar10 import EvalData
    from qrobench.engine.diagnostics import diagnose_result

    net = _net()
    hard = _Wrap(net, "hard").eval()
    x, y = _points(hard, 16)
    clean = np.ones(16, bool)
    r = _result({"clean": clean, "pgd20": clean.copy(), "square": clean.copy()}, seed=0)
    findings = diagnose_result(r, hard, EvalData(x, y, "planted"), command="test", probe_points=16)
    checks = [f.check for f in findings]
    assert len(set(checks)) == len(checks)
    assert {"stochastic", "forward-calls-backward", "unstable-predictions", "square-beats-white-box",
            "random-beats-attacks"} <= set(checks)
    assert {"zero-gradients", "unstable-predictions"} <= set(r.diagnostics["flags"])
    assert "stochastic" not in r.diagnostics["flags"] and "forward-calls-backward" not in r.diagnostics["flags"]
    assert r.diagnostics["probe"]["unstable_radius"] == 1 / 255


def test_a_longer_attack_with_restarts_that_beats_the_battery_is_flagged():
    from qrobench.engine.diagnostics import incomplete_finding

    net = _net()
    x, y = _points(net, 12)
    clean = np.ones(len(x), bool)
    # the record claims every point robust at ε = 32/255 (as if its attack had not moved): PGD-100 breaks them
    claims = dataclasses.replace(_result({"clean": clean, "pgd20": clean.copy()}, seed=0), eps=32 / 255)
    f = incomplete_finding(net, x, y, claims)
    assert f.status == "flag" and "PGD-100 (margin loss) with 5 restarts" in f.reason
    # at ε = 0 nothing can be broken
    assert incomplete_finding(net, x, y, dataclasses.replace(claims, eps=0.0)).status == "pass"
    assert incomplete_finding(net, x, y, dataclasses.replace(claims, stochastic=True)).status == "n/a"


def test_a_twin_that_disagrees_with_the_deployed_model_is_flagged():
    clean = np.ones(100, bool)
    r = _result({"clean": clean, "pgd20": clean.copy()})
    assert _status(record_findings(r), "twin-mismatch") == "n/a"  # not a deployed model
    good = {"agreement": {"points": 100, "agree": 99, "rate": 0.99},
            "transfer": {"pgd20": {"twin_fooled": 40, "both_fooled": 36, "rate": 0.9}}}
    assert _status(record_findings(dataclasses.replace(r, deployment=good)), "twin-mismatch") == "pass"
    low_agree = {**good, "agreement": {"points": 100, "agree": 90, "rate": 0.9}}
    assert _status(record_findings(dataclasses.replace(r, deployment=low_agree)), "twin-mismatch") == "flag"
    low_transfer = {**good, "transfer": {"pgd20": {"twin_fooled": 40, "both_fooled": 10, "rate": 0.25}}}
    assert _status(record_findings(dataclasses.replace(r, deployment=low_transfer)), "twin-mismatch") == "flag"
    few = {**good, "transfer": {"pgd20": {"twin_fooled": 4, "both_fooled": 0, "rate": 0.0}}}  # too few to judge
    assert _status(record_findings(dataclasses.replace(r, deployment=few)), "twin-mismatch") == "pass"


def test_logits_on_a_coarse_grid_trip_tied_logits_and_plain_logits_do_not():
    """An int8 runtime's requantized output layer: logits rounded to a grid step, so several classes
    share the largest value; argmax's lowest-index rule then decides whether the point is correct."""
    from qrobench.engine.diagnostics import TIE_FRACTION, _tie_finding

    net = _net()
    x, y = _points(net, 32)
    with torch.no_grad():
        logits = net(x)
    step = float(logits.abs().max()) / 2  # five levels: most points tie at the top
    coarse = torch.round(logits / step) * step
    flagged = _tie_finding(coarse, y)
    at_top = coarse == coarse.max(1, keepdim=True).values
    label_ties = int(((at_top.sum(1) > 1) & at_top[torch.arange(len(y)), y]).sum())
    assert label_ties > TIE_FRACTION * len(y) and flagged.status == "flag"
    assert flagged.reason.startswith(f"{label_ties} of {len(y)} probe points")
    assert _tie_finding(logits, y).status == "pass"  # continuous logits: no ties
    # exactly one label tie among 100 points is within the threshold; two are not
    base = torch.zeros(100, 10)
    base[torch.arange(100), 0] = 1.0
    labels = torch.zeros(100, dtype=torch.long)
    one, two = base.clone(), base.clone()
    one[0, 3] = 1.0
    two[:2, 3] = 1.0
    assert _tie_finding(one, labels).status == "pass" and _tie_finding(two, labels).status == "flag"
    # a tie that does not involve the true class does not decide correctness
    other = base.clone()
    other[:5, 0] = 0.0
    other[:5, 3] = other[:5, 4] = 1.0
    assert _tie_finding(other, labels).status == "pass"
    assert "counted correct" in _tie_finding(two, labels).reason


def test_the_probe_reports_tied_logits(probes):
    for kind in ("plain", "hard", "ste"):
        assert _status(probes[kind], "tied-logits") == "pass", kind
