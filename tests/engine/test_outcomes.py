"""Per-point outcomes: stored for every seed and attack, and every accuracy follows from them."""

import numpy as np
import pytest

from qrobench import evaluate
from qrobench.data.cifar10 import EvalData
from qrobench.engine.outcomes import decode_mask, encode_mask
from qrobench.errors import QrobenchError

SMALL_EPS = 2 / 255


def test_mask_round_trip_and_size():
    rng = np.random.default_rng(0)
    for n in (1, 7, 8, 9, 1000):
        m = rng.random(n) < 0.4
        assert np.array_equal(decode_mask(encode_mask(m), n), m)
    assert len(encode_mask(np.ones(1000, bool))) == 168
    with pytest.raises(ValueError, match="cannot hold"):
        decode_mask(encode_mask(np.ones(16, bool)), 30)


def test_outcomes_reproduce_every_stored_accuracy(tiny_trained, test_points):
    pts = EvalData(test_points.x[:80], test_points.y[:80], test_points.source)
    r = evaluate(tiny_trained, attacks=["fgsm", "pgd20", "cw"], n=80, data=pts, eps=SMALL_EPS, progress=False)
    assert r.has_outcomes and set(r.per_seed[0].outcomes) == {"clean", "fgsm", "pgd20", "cw"}
    (clean,) = r.masks("clean")
    assert clean.sum() / 80 == r.clean_acc
    for a in r.attacks:
        (m,) = r.masks(a)
        assert m.sum() / 80 == r.robust_acc[a] and not (m & ~clean).any()  # survivors were correct
    (worst,) = r.worst_case_masks()
    assert worst.sum() / 80 == r.worst_case_acc
    assert r.worst_case_over(["fgsm"]) == (r.robust_acc["fgsm"], 0.0)  # a subset, without re-running
    assert r.worst_case_over(["fgsm", "pgd20"])[0] >= r.worst_case_acc
    assert np.array_equal(r.point_scores(), worst.astype(float))
    with pytest.raises(QrobenchError, match="not measured under 'square'"):
        r.masks("square")
