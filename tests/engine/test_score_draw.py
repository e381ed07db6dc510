"""A randomised model's columns are scored under the clean pass's noise draw (protocol §6.4).

With a draw per column, a point had to survive one more independent draw per attack, so an
attack that changes nothing still lowered the worst case (measured on enres20-fp: 3 pp for 8
columns of clean images alone). Under the shared draw an attack that returns its input scores
exactly like the clean pass, point by point, however many columns there are.
"""

import dataclasses

import numpy as np
import pytest
import torch

from qrobench import evaluate
from qrobench.attacks.base import ATTACKS, Attack
from qrobench.data.cifar10 import EvalData
from qrobench.engine.diagnostics import record_findings
from qrobench.engine.merge import merge_results
from qrobench.engine.results import SHARED_SCORE_DRAW, Result, write_result
from qrobench.engine.seeding import predict
from qrobench.errors import QrobenchError
from qrobench.models import create_model

N = 100


class _Identity(Attack):
    """Returns its input: every point it is given survives iff the scoring pass classifies it."""

    def perturb(self, x, y, generator=None):
        return x.clone()


@pytest.fixture
def identity_attacks(monkeypatch):
    names = ["_test-identity-a", "_test-identity-b", "_test-identity-c"]
    for name in names:
        monkeypatch.setitem(ATTACKS._entries, name, (_Identity, {}, {}))
    return names


def _noisy(trained) -> torch.nn.Module:
    m = create_model("preact_resnet", depth=8, noise_coef=1.0)  # strong noise: draws disagree often
    m.load_state_dict(trained.state_dict())
    return m.eval()


def _points(test_points) -> EvalData:
    return EvalData(test_points.x[:N], test_points.y[:N], test_points.source)


def test_an_attack_that_changes_nothing_scores_exactly_like_the_clean_pass(tiny_trained, test_points,
                                                                          identity_attacks):
    model, pts = _noisy(tiny_trained), _points(test_points)
    # the premise: two noise draws classify some of these points differently, so separate
    # scoring draws would lower the worst case below clean accuracy
    a, b = (predict(model, pts.x, 50, "cpu", (s,)) for s in (1, 2))
    assert int((a != b).sum()) >= 3

    r = evaluate(model, attacks=identity_attacks, n=N, data=pts, repeats=2, batch_size=50, progress=False)
    assert r.stochastic and r.score_draw == SHARED_SCORE_DRAW
    for name in identity_attacks:
        for clean, survived in zip(r.masks("clean"), r.masks(name), strict=True):
            np.testing.assert_array_equal(survived, clean)
    assert r.worst_case_acc == r.clean_acc
    assert all(p.worst_case_acc == p.clean_acc for p in r.per_seed)


def test_scoring_leaves_the_test_points_untouched(tiny_trained, test_points, identity_attacks):
    """The shared draw scores each example inside a copy of its clean batch: an attack that moves
    the points must leave the data, and so the next attack's starting points, as they were."""
    model, pts = _noisy(tiny_trained), _points(test_points)
    before = pts.x.clone()
    # contiguous memory: there a device move of the batch is no copy unless asked for
    r = evaluate(model, attacks=["fgsm", identity_attacks[0]], n=N, data=pts, repeats=1, batch_size=50,
                 channels_last=False, progress=False)
    assert torch.equal(pts.x, before)
    np.testing.assert_array_equal(r.masks(identity_attacks[0])[0], r.masks("clean")[0])
    assert r.robust_acc["fgsm"] < r.clean_acc  # fgsm moved the points it scored


def test_deterministic_records_name_no_draw(tiny_trained, test_points):
    r = evaluate(tiny_trained, attacks=["fgsm"], n=20, data=_points(test_points), eps=2 / 255, progress=False)
    assert r.score_draw is None


def test_merge_refuses_records_scored_otherwise(tiny_trained, test_points, identity_attacks, tmp_path):
    model, pts = _noisy(tiny_trained), _points(test_points)
    kw = dict(attacks=identity_attacks[:1], n=20, data=EvalData(pts.x[:20], pts.y[:20], pts.source),
              repeats=1, batch_size=20, progress=False)
    new = evaluate(model, seed=0, **kw)
    old = dataclasses.replace(evaluate(model, seed=1, **kw), score_draw=None)  # as written before the change
    write_result(new, tmp_path / "new.json")
    write_result(old, tmp_path / "old.json")
    with pytest.raises(QrobenchError, match="score_draw"):
        merge_results([tmp_path / "new.json", tmp_path / "old.json"])
    write_result(dataclasses.replace(old, score_draw=SHARED_SCORE_DRAW), tmp_path / "old.json")
    assert merge_results([tmp_path / "new.json", tmp_path / "old.json"]).seeds == [0, 1]


def _status(r: Result) -> str:
    return next(f.status for f in record_findings(r) if f.check == "separate-score-draws")


def test_records_with_separate_draws_are_flagged():
    r = Result(model="m", n=100, eps=8 / 255, clean_acc=0.7, robust_acc={"pgd20": 0.4}, worst_case_acc=0.4,
               attacks={"pgd20": {}}, stochastic=True, repeats=3)
    assert _status(r) == "flag"
    assert _status(dataclasses.replace(r, score_draw=SHARED_SCORE_DRAW)) == "pass"
    assert _status(dataclasses.replace(r, stochastic=False)) == "n/a"
    assert _status(dataclasses.replace(r, threat_model="corruptions", eps=None)) == "n/a"
