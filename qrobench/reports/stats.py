"""Uncertainty of an accuracy and significance of a gap between two models.

An accuracy on the first n test points estimates the accuracy on the test distribution; a
1,000-point accuracy of 40 % is uncertain by about ±3 points (95 %), far more than the gap
between neighbouring leaderboard rows. Shown beside every accuracy (docs/protocol.md §6.7):

- one seed: the Wilson score interval for a binomial proportion, 95 %;
- k seeds of a randomised model: the same n points are scored k times with fresh noise, so
  two sources add up: the sampling of the n points (Wilson at the seed mean) and the noise
  (Student t with k − 1 degrees of freedom on the seed mean, t·s/√k). The two half-widths
  are combined in quadrature on each side of the mean.

Two models measured on the same points are compared point by point. Each point gets a score
per model (1 robust / 0 not, or for a randomised model the fraction of seeds in which it was
robust); the test is a paired sign-flip test of the score differences, which for 0/1 scores
is exactly McNemar's exact test (a two-sided binomial test on the discordant points).
"""

from __future__ import annotations

import math

import numpy as np
from scipy import stats

LEVEL = 0.95
ALPHA = 1 - LEVEL
SIGN_FLIP_DRAWS = 20_000


def wilson(p: float, n: int, level: float = LEVEL) -> tuple[float, float]:
    """Wilson score interval of a proportion ``p`` observed on ``n`` points."""
    if n <= 0:
        return (math.nan, math.nan)
    z = stats.norm.ppf(0.5 + level / 2)
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return (max(0.0, centre - half), min(1.0, centre + half))


def accuracy_interval(mean: float, n: int, seed_values=(), level: float = LEVEL) -> tuple[float, float]:
    """95 % interval of an accuracy (fractions), over the points and, for several seeds, the noise."""
    lo, hi = wilson(mean, n, level)
    values = [float(v) for v in seed_values]
    if len(values) < 2:
        return (lo, hi)
    k = len(values)
    noise = stats.t.ppf(0.5 + level / 2, k - 1) * float(np.std(values, ddof=1)) / math.sqrt(k)
    return (max(0.0, mean - math.hypot(mean - lo, noise)), min(1.0, mean + math.hypot(hi - mean, noise)))


def paired_test(scores_a, scores_b, seed: int = 0) -> float:
    """Two-sided p-value that two models are equally robust on the same points.

    ``scores_*``: per point, 1/0 (robust or not) or the fraction of seeds in which it was robust.
    """
    d = np.asarray(scores_a, dtype=float) - np.asarray(scores_b, dtype=float)
    if d.shape != np.shape(scores_b) or d.ndim != 1:
        raise ValueError("paired scores must be two vectors over the same points")
    d = d[d != 0]
    if len(d) == 0:
        return 1.0
    if np.all(np.abs(d) == 1):  # 0/1 outcomes: McNemar's exact test
        return float(stats.binomtest(int((d > 0).sum()), len(d), 0.5).pvalue)
    rng = np.random.default_rng(seed)  # seeded, so a rebuilt leaderboard is byte-identical
    observed = abs(d.sum())
    flips = rng.choice((-1.0, 1.0), size=(SIGN_FLIP_DRAWS, len(d)))
    extreme = int((np.abs(flips @ d) >= observed - 1e-12).sum())
    return (1 + extreme) / (SIGN_FLIP_DRAWS + 1)


def significance_groups(scores: list[np.ndarray | None]) -> list[int | None]:
    """Group numbers for rows in ranking order: a row joins the group of the row above unless
    the paired test separates them at the 5 % level. Rows without outcomes get no group and
    are skipped when chaining."""
    groups: list[int | None] = []
    prev, group = None, 0
    for s in scores:
        if s is None:
            groups.append(None)
            continue
        if prev is None or len(prev) != len(s) or paired_test(prev, s) < ALPHA:  # other points: no pairing
            group += 1
        groups.append(group)
        prev = s
    return groups


def result_intervals(r) -> dict[str, tuple[float, float]]:
    """95 % intervals of a result's clean, per-attack and worst-case accuracy (fractions)."""
    seeds = r.per_seed
    out = {"clean": accuracy_interval(r.clean_acc, r.n, [s.clean_acc for s in seeds])}
    for a, acc in r.robust_acc.items():
        out[a] = accuracy_interval(acc, r.n, [s.robust_acc.get(a, acc) for s in seeds])
    if r.robust_acc:
        out["worst_case"] = accuracy_interval(r.worst_case_acc, r.n, [s.worst_case_acc for s in seeds])
    return out
