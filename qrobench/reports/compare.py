"""Two results on the same points, compared point by point over the same attacks (``qrobench compare``).

A worst case is a property of a battery: over fewer attacks more points survive. Comparing one
file's worst case over ``pgd20, cw`` with another's over the whole battery finds "significant"
gaps between a model and itself. So, like with like:

- the attacks are those both files measured (or ``attacks``, which both must hold);
- the points (n, first index, data set and split), the threat model and ε must agree, else
  there is no pairing and the comparison is refused;
- different seeds or batch sizes (a randomised model's noise, the attacks' random starts are
  drawn per seed and batch) or different settings of a shared attack are allowed, with a warning.

Nothing here prints; :meth:`Comparison.lines` is what ``qrobench compare`` shows.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..engine.results import Result
from ..errors import QrobenchError
from ..protocol import eps_text
from .collect import same_eps
from .stats import ALPHA, accuracy_interval, paired_test


@dataclass
class Side:
    """One file's worst case over the compared attacks."""

    label: str  # the file, as given
    result: Result
    scores: np.ndarray  # per point, the fraction of seeds in which it survives every compared attack
    mean: float
    interval: tuple[float, float]

    def line(self) -> str:
        lo, hi = self.interval
        r = self.result
        return (f"{r.model:24s} worst case {100 * self.mean:6.2f} %  [{100 * lo:.1f}, {100 * hi:.1f}]  "
                f"({r.repeats} seed(s), {self.label})")


@dataclass
class Comparison:
    a: Side
    b: Side
    attacks: list[str]
    given: bool  # the caller named the attacks (else: the ones both files measured)
    left_out: dict[str, list[str]]  # label -> attacks that file measured but the comparison leaves out
    better: int  # points where a scores higher than b
    worse: int
    p: float
    warnings: list[str] = field(default_factory=list)

    @property
    def significant(self) -> bool:
        return self.p < ALPHA

    def lines(self) -> list[str]:
        what = "over the attacks given" if self.given else "over the attacks both measured"
        head = f"{what}: {', '.join(self.attacks)}"
        dropped = [f"{label} also measured {', '.join(names)}" for label, names in self.left_out.items() if names]
        if dropped:
            head += f" (left out: {'; '.join(dropped)})"
        verdict = "significant" if self.significant else "not significant"
        return [head, self.a.line(), self.b.line(),
                f"points where {self.a.result.model} does better: {self.better}, worse: {self.worse}; "
                f"paired test p = {self.p:.4g} ({verdict} at {100 * ALPHA:.0f} %)"]


def _points(r: Result) -> tuple:
    return (r.n, r.first_index, r.dataset, r.split)


def _check_pairable(a: Result, b: Result, labels: tuple[str, str]) -> None:
    """The refusals: a paired test needs the same points under the same threat."""
    if _points(a) != _points(b):
        raise QrobenchError(
            f"{labels[0]} and {labels[1]} measured different points (n {a.n} vs {b.n}, first index "
            f"{a.first_index} vs {b.first_index}, data set {a.dataset}/{a.split} vs {b.dataset}/{b.split}); "
            "a paired test needs the same points")
    if a.threat_model != b.threat_model or not same_eps(a.eps, b.eps):
        raise QrobenchError(
            f"{labels[0]} and {labels[1]} measured different threats ({a.threat_model} ε {eps_text(a.eps)} vs "
            f"{b.threat_model} ε {eps_text(b.eps)}); compare results at one threat model and ε")
    for label, r in zip(labels, (a, b), strict=True):
        if not r.has_outcomes:
            raise QrobenchError(f"{label} holds no per-point outcomes (written by qrobench "
                                f"{r.qrobench_version or '< 0.2'}); re-run it to compare point by point")


def _choose_attacks(a: Result, b: Result, attacks, labels: tuple[str, str]) -> list[str]:
    if attacks is not None:
        names = list(dict.fromkeys(attacks))
        lacking = [f"{label} lacks {', '.join(x for x in names if x not in r.attacks)}"
                   for label, r in zip(labels, (a, b), strict=True) if any(x not in r.attacks for x in names)]
        if lacking:
            raise QrobenchError(f"--attacks must name attacks both files measured: {'; '.join(lacking)} "
                                f"(both measured: {', '.join(x for x in a.attacks if x in b.attacks) or 'none'})")
        return names
    shared = [x for x in a.attacks if x in b.attacks]  # in the first file's battery order
    if not shared:
        raise QrobenchError(f"{labels[0]} ({', '.join(a.attacks) or 'no attacks'}) and {labels[1]} "
                            f"({', '.join(b.attacks) or 'no attacks'}) share no attack; there is no worst case "
                            "to compare like with like")
    return shared


def _check_cascade(r: Result, names: list[str], label: str) -> None:
    """A --cascade file's masks are cumulative (each attack ran on what the earlier ones left), so
    only a leading part of its battery is a worst case over exactly those attacks; a --cascade-from
    attack only together with the attacks it continued."""
    if r.cascade and set(names) != set(list(r.attacks)[: len(names)]):
        raise QrobenchError(f"{label} was measured with --cascade: its per-attack outcomes are cumulative, so "
                            f"only a leading part of its battery ({', '.join(r.attacks)}) can be compared, "
                            f"not {', '.join(names)}")
    r.check_worst_case_set(names, f"{label}: a worst case over {', '.join(names)}")


def _warnings(a: Result, b: Result, names: list[str], labels: tuple[str, str]) -> list[str]:
    out = []
    if a.seeds != b.seeds:
        out.append(f"the seeds differ ({labels[0]}: {', '.join(map(str, a.seeds))}; {labels[1]}: "
                   f"{', '.join(map(str, b.seeds))}): random starts and a randomised model's noise differ")
    if a.batch_size is not None and b.batch_size is not None and a.batch_size != b.batch_size:
        out.append(f"the batch sizes differ ({a.batch_size} vs {b.batch_size}): the attacks' random starts are "
                   "drawn per batch, so they differ")
    for x in names:
        # a key only one file holds is a setting added later, except grad_precision, which fp32
        # records leave out (attacks/gradient.py): there its absence means fp32
        sa, sb = ({"grad_precision": "fp32", **(r.attacks.get(x) or {})} for r in (a, b))
        differ = sorted(k for k in set(sa) & set(sb) if sa[k] != sb[k])
        if differ:
            out.append(f"{x} ran with other settings in the two files ({', '.join(differ)})")
    return out


def _side(label: str, r: Result, names: list[str]) -> Side:
    masks = r.worst_case_masks(names)
    scores = np.mean(np.stack(masks), axis=0)
    mean = float(scores.mean())
    return Side(label, r, scores, mean, accuracy_interval(mean, r.n, [float(m.mean()) for m in masks]))


def compare_results(a: Result, b: Result, attacks=None, labels: tuple[str, str] = ("first", "second")) -> Comparison:
    """Paired comparison of the worst cases of ``a`` and ``b`` over the same attacks on the same points.

    ``attacks``: the attacks to take the worst case over (both files must hold them); default: the
    attacks both measured. Raises :class:`QrobenchError` where there is nothing like-for-like to
    compare; softer differences are returned as ``warnings``."""
    _check_pairable(a, b, labels)
    names = _choose_attacks(a, b, attacks, labels)
    for label, r in zip(labels, (a, b), strict=True):
        _check_cascade(r, names, label)
    sa, sb = _side(labels[0], a, names), _side(labels[1], b, names)
    d = sa.scores - sb.scores
    left_out = {label: [x for x in r.attacks if x not in names] for label, r in zip(labels, (a, b), strict=True)}
    return Comparison(sa, sb, names, attacks is not None, left_out, int((d > 0).sum()), int((d < 0).sum()),
                      paired_test(sa.scores, sb.scores), _warnings(a, b, names, labels))
