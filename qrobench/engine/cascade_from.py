"""Continuing a cascade from an earlier run (``--cascade-from FILE``): a slow attack runs only on
the points that FILE's attacks all left standing.

Why: a randomised model's ``aa-rand`` costs about 80 CPU-minutes per 250 points, and about half
of the clean-correct points are already broken by the cheap battery measured before it. Running
it on the survivors alone gives the same worst case (a point counts as robust only if it
survives every attack) for about half the compute, which is the ``--cascade`` rule across runs.

What it costs in information: the slow attack's outcomes are *cumulative*, correct and robust to
the earlier attacks and to it, so its own accuracy is unknown. The result says so per attack
(``Result.cascade_from``: attack → the attacks its outcomes already count), reports show its
column as n/a, diagnostics and ``compare`` use it only together with those attacks, and ``merge``
joins it only with files that hold those attacks, checking point by point that its outcomes lie
inside their survivors (docs/protocol.md §6.3).
"""

from __future__ import annotations

import hashlib

import numpy as np
import torch

from ..errors import QrobenchError
from .config import EvalConfig
from .outcomes import decode_mask
from .results import Result


class CleanMismatch(QrobenchError):
    """This run's clean predictions are not those of the run it continues."""


class CascadeFrom:
    """The survivors of an earlier run's attacks on this run's points, per seed."""

    def __init__(self, prior: Result, attacks, cfg: EvalConfig, card_sha: str | None, seeds: list[int],
                 start: int, stop: int, stochastic: bool, label: str = "--cascade-from"):
        over = list(prior.attacks) if attacks is None else ([attacks] if isinstance(attacks, str) else list(attacks))
        where = f"{label} ({prior.model}, attacks {', '.join(prior.attacks)})"
        if not over:
            raise QrobenchError(f"{where}: name at least one of its attacks to continue from")
        unknown = [a for a in over if a not in prior.attacks]
        if unknown:
            raise QrobenchError(f"{where} was not measured under {', '.join(unknown)}; --cascade-attacks takes "
                                f"some of {', '.join(prior.attacks)}")
        again = [a for a in cfg.attacks if a in over]
        if again:
            raise QrobenchError(f"{where} already holds {', '.join(again)}; run only attacks it does not hold")
        for a in over:
            hidden = [b for b in prior.cumulative_over(a) if b not in over]
            if hidden:
                raise QrobenchError(f"{where}: the outcomes of {a} there already count {', '.join(hidden)}; "
                                    f"continue from those too (--cascade-attacks {','.join([*over, *hidden])})")
        if card_sha is not None and prior.card_sha256 != card_sha:
            raise QrobenchError(f"{where} measured another model file (card sha256 {str(prior.card_sha256)[:12]}, "
                                f"this run {card_sha[:12]}): continue only from a run of the same model")
        for key, mine in (("eps", cfg.eps), ("threat_model", cfg.threat_model), ("dataset", cfg.dataset)):
            if getattr(prior, key) != mine:
                raise QrobenchError(f"{where} measured {key} {getattr(prior, key)!r}, this run {mine!r}; the "
                                    "survivors of another threat model say nothing about this one")
        if not prior.has_outcomes:
            raise QrobenchError(f"{where} holds no per-point outcomes; re-run it with qrobench >= 0.3")
        lo, hi = prior.first_index, prior.first_index + prior.n
        if start < lo or stop > hi:
            raise QrobenchError(f"{where} holds points {lo}–{hi - 1}, this run needs {start}–{stop - 1}")
        missing = [s for s in seeds if s not in prior.seeds]
        if missing:
            raise QrobenchError(f"{where} holds seeds {prior.seeds}, not {missing}: a point's survival belongs "
                                "to its seed's noise draws")
        if stochastic and prior.batch_size != cfg.batch_size:
            raise QrobenchError(f"{where} ran at batch size {prior.batch_size}, this run at {cfg.batch_size}: a "
                                "randomised model's clean pass draws its noise per batch, so the clean-correct points "
                                f"would differ; use --batch-size {prior.batch_size}")
        self.attacks = over
        self.clean: dict[int, torch.Tensor] = {}
        self.survivors: dict[int, torch.Tensor] = {}
        for run in prior.per_seed:
            if run.seed not in seeds:
                continue
            clean = decode_mask(run.outcomes["clean"], prior.n)[start - lo:stop - lo]
            alive = clean.copy()
            for a in over:
                alive &= decode_mask(run.outcomes[a], prior.n)[start - lo:stop - lo]
            self.clean[run.seed] = torch.from_numpy(clean)
            self.survivors[run.seed] = torch.from_numpy(alive)
        self.where = where

    def targets(self, seed: int, correct: torch.Tensor) -> torch.Tensor:
        """The points of ``seed`` to attack: this run's clean-correct points that survived every
        earlier attack. Refuses when this run's clean predictions differ from the earlier run's."""
        differ = int((self.clean[seed] != correct).sum())
        if differ:
            raise CleanMismatch(f"{self.where}: {differ} of this run's points get other clean predictions than "
                                f"there (seed {seed}), so its survivors are not this run's; same model file, batch "
                                "size and device (an int8 runtime: the same CPU kind)?")
        return correct & self.survivors[seed]

    def digest(self) -> str:
        """A fingerprint of the survivors, for the journal: a resumed run must continue from the same ones."""
        h = hashlib.sha256()
        for seed in sorted(self.survivors):
            h.update(np.packbits(self.survivors[seed].numpy()).tobytes())
        return h.hexdigest()[:16]
