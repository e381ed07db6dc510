"""Intervals and the paired test: checked against textbook values and against simulation."""

import math

import numpy as np
import pytest

from qrobench.reports.stats import accuracy_interval, paired_test, significance_groups, wilson


def test_wilson_matches_the_textbook_formula_and_scipy():
    from scipy.stats import binomtest

    for k, n in ((400, 1000), (0, 50), (50, 50), (37, 200)):
        lo, hi = wilson(k / n, n)
        ci = binomtest(k, n).proportion_ci(confidence_level=0.95, method="wilson")
        assert (lo, hi) == pytest.approx((ci.low, ci.high), abs=1e-9)
    lo, hi = wilson(0.4, 1000)
    assert hi - lo == pytest.approx(0.0606, abs=2e-4)  # the ±3 points the issue quotes


def test_seed_spread_widens_the_interval_and_one_seed_is_wilson():
    assert accuracy_interval(0.4, 1000) == wilson(0.4, 1000)
    assert accuracy_interval(0.4, 1000, [0.4, 0.4, 0.4]) == pytest.approx(wilson(0.4, 1000))
    lo, hi = accuracy_interval(0.4, 1000, [0.39, 0.40, 0.41])
    wlo, whi = wilson(0.4, 1000)
    noise = 4.302652729911275 * 0.01 / math.sqrt(3)  # t(0.975, 2) · s / √3
    assert 0.4 - lo == pytest.approx(math.hypot(0.4 - wlo, noise)) and hi > whi


def test_wilson_coverage_by_simulation():
    rng = np.random.default_rng(0)
    p, n = 0.37, 1000
    hits = sum(lo <= p <= hi for lo, hi in (wilson(rng.binomial(n, p) / n, n) for _ in range(2000)))
    assert 0.93 < hits / 2000 < 0.97


def test_paired_test_is_mcnemar_on_binary_outcomes():
    a = np.array([1] * 30 + [0] * 10 + [1] * 50)
    b = np.array([0] * 30 + [1] * 10 + [1] * 50)  # 30 vs 10 discordant points
    from scipy.stats import binomtest

    assert paired_test(a, b) == pytest.approx(binomtest(30, 40, 0.5).pvalue)
    assert paired_test(a, a) == 1.0
    same = np.array([1, 0] * 50)
    assert paired_test(same, np.roll(same, 1)) > 0.5  # 50 vs 50 discordant: no difference


def test_paired_test_on_seed_averaged_scores_is_seeded_and_sensible():
    rng = np.random.default_rng(1)
    a = rng.integers(0, 4, 500) / 3
    assert paired_test(a, np.clip(a - 1 / 3, 0, 1)) < 0.001  # b is worse on many points
    b = rng.permutation(a)
    assert paired_test(a, b) == paired_test(a, b)  # repeatable
    assert paired_test(a, b) > 0.05  # same distribution, no pairing effect beyond chance


def test_groups_chain_rows_that_are_not_significantly_different():
    top = np.array([1] * 600 + [0] * 400)
    close = top.copy()
    close[:5] = 0  # 5 points worse: not significant
    far = np.array([1] * 400 + [0] * 600)  # 195 points worse than `close`
    assert significance_groups([top, close, None, far, far.copy()]) == [1, 1, None, 2, 2]
