"""Runs summary: which zoo models lack results, which results no longer match their card, and
which leaderboard rows were measured with less than the leaderboard protocol.

A result is stale when the card's sha256 changed after it was measured (the checkpoint was
re-exported or swapped): its numbers describe weights the zoo no longer holds. A row short of
the protocol (fewer points, an attack of the standard battery missing, or fewer seeds for a
randomised model) is shown, not hidden: its worst case is an upper bound that a full run
may lower.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

from ..protocol import LEADERBOARD_N, STOCHASTIC_REPEATS, battery_for, eps_text
from .collect import ResultFile, Selection, is_stale, key_of, same_eps


@dataclass
class RunsSummary:
    eps: float
    zoo_models: list[str] = field(default_factory=list)
    measured: list[str] = field(default_factory=list)  # up-to-date result at eps
    missing: list[str] = field(default_factory=list)  # no result at eps
    stale: list[dict] = field(default_factory=list)  # {model, file, eps, result_sha256, card_sha256}
    not_in_zoo: list[str] = field(default_factory=list)  # results whose model has no card here
    invalid_cards: list[str] = field(default_factory=list)
    short_of_protocol: list[dict] = field(default_factory=list)  # {model, n, repeats, missing_attacks}

    def as_dict(self) -> dict:
        return asdict(self)

    def lines(self) -> list[str]:
        """Plain-text bullet lines (Markdown-compatible)."""
        eps = eps_text(self.eps)
        out = [f"- zoo models: {len(self.zoo_models)}; with an up-to-date result at ε = {eps}: "
               f"{len(self.measured)}"]
        out.append(f"- lacking a result at ε = {eps}: " + (", ".join(self.missing) or "none"))
        if self.stale:
            out.append("- stale (card sha256 changed since the run; re-run them):")
            out += [f"  - {s['model']}: `{s['file']}` measured {s['result_sha256'][:12]}…, card now "
                    f"{s['card_sha256'][:12]}…" for s in self.stale]
        else:
            out.append("- stale: none")
        if self.short_of_protocol:
            out.append(f"- measured with less than the leaderboard protocol ({LEADERBOARD_N} points, the "
                       f"standard battery, {STOCHASTIC_REPEATS} seeds if randomised; worst case may drop in a full run):")
            for row in self.short_of_protocol:
                parts = [f"n = {row['n']}"] if row["n"] < LEADERBOARD_N else []
                if row["repeats"] is not None:
                    parts.append(f"{row['repeats']} seed{'s' if row['repeats'] > 1 else ''} of a randomised model "
                                 f"(protocol: {STOCHASTIC_REPEATS})")
                if row["missing_attacks"]:
                    missing = ", ".join(row["missing_attacks"])
                    if row.get("outcomes") is False:  # nothing to merge a new attack into
                        why = (f"its result (qrobench {row.get('version') or '< 0.2'}) predates per-point "
                               "outcomes, so the whole battery must be re-run"
                               + (f" with {STOCHASTIC_REPEATS} seeds; aa-rand alone costs about 10 s per point "
                                  "and seed on 2 CPU cores, a job for an accelerator: scripts/device_battery.sh"
                                  if row.get("stochastic") else ""))
                    elif row.get("stochastic"):  # its noise depends on the batch and device: keep both
                        why = (f"run `qrobench run --model {row['model']} --attacks {','.join(row['missing_attacks'])} "
                               f"--batch-size {row.get('batch_size')} --device {row.get('device')}` for each seed "
                               "(a randomised model's noise depends on both, so other values cannot be merged) and "
                               "`qrobench merge` it in" + _continue_hint(row))
                    else:
                        why = f"run `qrobench run --model {row['model']} --attacks {','.join(row['missing_attacks'])}` " \
                              "and `qrobench merge` it in" + _continue_hint(row)
                    parts.append(f"no {missing} ({why})")
                out.append(f"  - {row['model']}: " + "; ".join(parts))
        if self.not_in_zoo:
            out.append("- results for models not in the zoo: " + ", ".join(self.not_in_zoo))
        out += [f"- unreadable card: {msg}" for msg in self.invalid_cards]
        return out


def _continue_hint(row: dict) -> str:
    """The cheaper way to add a slow attack to a row that has per-point outcomes."""
    if not row.get("file"):
        return ""
    return (f"; with `--cascade-from {row['file']}` it attacks only the points that file's attacks left standing, "
            "the worst case exact for about half the compute, its own column n/a")


def summarize_runs(results: list[ResultFile], sel: Selection, cards: dict, invalid_cards=(),
                   root=None) -> RunsSummary:
    """``sel``: the leaderboard's selection, so the summary judges the rows the table shows."""
    eps = sel.eps
    s = RunsSummary(eps=eps, zoo_models=sorted(cards), invalid_cards=list(invalid_cards))
    fresh_at_eps, any_at_eps = set(), set()
    for r in results:
        if r.model not in cards:
            continue
        stale = is_stale(r, cards)
        k = key_of(r)
        if (k.threat_model, k.dataset) == (sel.threat_model, sel.dataset) and same_eps(k.eps, eps):
            any_at_eps.add(r.model)
            if not stale:
                fresh_at_eps.add(r.model)
        if stale:
            file = r.path.relative_to(root) if root is not None else r.path
            s.stale.append({"model": r.model, "file": str(file), "eps": r.result.eps,
                            "result_sha256": r.card_sha256, "card_sha256": cards[r.model].sha256})
    for r in (r for r in sel.rows if r.model in cards):
        stochastic = bool(r.result.stochastic)
        battery = battery_for(stochastic, threat_model=getattr(r.result, "threat_model", None))
        missing = [a for a in battery if a not in r.result.robust_acc]
        n, repeats = int(r.result.n), int(r.result.repeats)
        few_seeds = repeats if stochastic and repeats < STOCHASTIC_REPEATS else None
        if n < LEADERBOARD_N or missing or few_seeds is not None:
            row = {"model": r.model, "n": n, "repeats": few_seeds, "missing_attacks": missing,
                   "stochastic": stochastic}
            if missing:
                row.update(outcomes=r.result.has_outcomes, version=r.result.qrobench_version,
                           batch_size=r.result.batch_size, device=r.result.device,
                           # as typed from the folder that holds the results folder
                           file=str(Path(root.name) / r.path.relative_to(root) if root is not None else r.path))
            s.short_of_protocol.append(row)
    s.measured = sorted(fresh_at_eps)
    s.missing = sorted(set(cards) - any_at_eps)
    s.not_in_zoo = sorted({r.model for r in results} - set(cards)) if cards else []
    return s
