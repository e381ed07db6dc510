"""Runs summary: which zoo models lack results and which results no longer match their card.

A result is stale when the card's sha256 changed after it was measured (the checkpoint was
re-exported or swapped): its numbers describe weights the zoo no longer holds.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from fractions import Fraction

from .collect import ResultFile, is_stale, same_eps


@dataclass
class RunsSummary:
    eps: float
    zoo_models: list[str] = field(default_factory=list)
    measured: list[str] = field(default_factory=list)  # up-to-date result at eps
    missing: list[str] = field(default_factory=list)  # no result at eps
    stale: list[dict] = field(default_factory=list)  # {model, file, eps, result_sha256, card_sha256}
    not_in_zoo: list[str] = field(default_factory=list)  # results whose model has no card here
    invalid_cards: list[str] = field(default_factory=list)

    def as_dict(self) -> dict:
        return asdict(self)

    def lines(self) -> list[str]:
        """Plain-text bullet lines (Markdown-compatible)."""
        eps = f"{Fraction(self.eps).limit_denominator(1000)}"
        out = [f"- zoo models: {len(self.zoo_models)}; with an up-to-date result at ε = {eps}: "
               f"{len(self.measured)}"]
        out.append(f"- lacking a result at ε = {eps}: " + (", ".join(self.missing) or "none"))
        if self.stale:
            out.append("- stale (card sha256 changed since the run; re-run them):")
            out += [f"  - {s['model']}: `{s['file']}` measured {s['result_sha256'][:12]}…, card now "
                    f"{s['card_sha256'][:12]}…" for s in self.stale]
        else:
            out.append("- stale: none")
        if self.not_in_zoo:
            out.append("- results for models not in the zoo: " + ", ".join(self.not_in_zoo))
        out += [f"- unreadable card: {msg}" for msg in self.invalid_cards]
        return out


def summarize_runs(results: list[ResultFile], cards: dict, eps: float, invalid_cards=(),
                   root=None) -> RunsSummary:
    s = RunsSummary(eps=eps, zoo_models=sorted(cards), invalid_cards=list(invalid_cards))
    fresh_at_eps, any_at_eps = set(), set()
    for r in results:
        if r.model not in cards:
            continue
        stale = is_stale(r, cards)
        if same_eps(r.data["eps"], eps):
            any_at_eps.add(r.model)
            if not stale:
                fresh_at_eps.add(r.model)
        if stale:
            file = r.path.relative_to(root) if root is not None else r.path
            s.stale.append({"model": r.model, "file": str(file), "eps": r.data["eps"],
                            "result_sha256": r.card_sha256, "card_sha256": cards[r.model].sha256})
    s.measured = sorted(fresh_at_eps)
    s.missing = sorted(set(cards) - any_at_eps)
    s.not_in_zoo = sorted({r.model for r in results} - set(cards)) if cards else []
    return s
