"""Reading results as data: the measured result JSONs and the published reference rows.

Layout under the results folder (``--results-dir``, default ``results/``)::

    zoo/<model>.json              leaderboard entry, one per model (ε = 8/255, standard battery)
    runs/<model>__<time>.json     ad-hoc ``qrobench run`` output (git-ignored; read too)
    check/<model>.json            ``qrobench check`` baselines (a CI protocol, not leaderboard rows)
    reference/*.json              published numbers typed from papers, marked "reported"

Every ``*.json`` carrying a result schema (``qrobench-result-v2``, or v1 through the
migration) outside ``check/`` and ``reference/`` is a measured result; other JSON files (the
leaderboard's own output) are ignored. Nothing here writes, and nothing here builds a
network: everything shown comes from the files.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

from ..engine.results import Result, is_result_dict
from ..errors import ModelCardError, QrobenchError
from ..protocol import DEFAULT_DATASET, DEFAULT_THREAT_MODEL
from ..zoo.card import ModelCard

REPORTED_SCHEMA = "qrobench-reported-v1"
# check/, reference/, sweeps/ and weights/ are read by their own readers; pieces/ holds the runs
# that a zoo result was merged from (its merged_from names them), which must not be listed beside it;
# fullset/ holds full-test-set runs of a partial battery, which must not displace a complete row;
# threats/ holds the weight threats (bit errors), tabled by the studies, never ranked against attacks;
# retired/ holds the results of models retired from the zoo, superseded/ the results of zoo models
# that a re-measurement replaced (model_zoo/HISTORY.md says why), kept to be read, never ranked.
SKIP_DIRS = ("check", "reference", "pieces", "sweeps", "weights", "fullset", "threats", "retired", "superseded")
REQUIRED_REPORTED_FIELDS = ("model", "architecture", "ensemble", "precision", "clean_acc", "robust_acc")
EPS_TOL = 1e-6


@dataclass
class ResultFile:
    path: Path
    result: Result

    @property
    def model(self) -> str:
        return self.result.model

    @property
    def card_sha256(self) -> str | None:
        return self.result.card_sha256


def _read_json(path: Path, root: Path):
    try:
        return json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise QrobenchError(f"{path} is not valid JSON ({e}); fix it or move it out of {root}") from e


def find_results(results_dir: str | os.PathLike) -> list[ResultFile]:
    """Every measured result file under ``results_dir`` (recursively), in path order."""
    root = Path(results_dir)
    if not root.is_dir():
        raise QrobenchError(f"results folder {str(root)!r} does not exist; pass --results-dir")
    found = []
    for path in sorted(root.rglob("*.json")):
        rel = path.relative_to(root)
        if rel.parts[0] in SKIP_DIRS or any(p.startswith(".") for p in rel.parts):
            continue
        d = _read_json(path, root)
        if not is_result_dict(d):
            continue
        found.append(ResultFile(path, Result.from_dict(d, str(path))))
    return found


def find_reported(results_dir: str | os.PathLike) -> list[dict]:
    """Published reference rows from ``reference/*.json``, each tagged with its source."""
    root = Path(results_dir) / "reference"
    rows = []
    for path in sorted(root.glob("*.json")) if root.is_dir() else []:
        d = _read_json(path, root)
        if not isinstance(d, dict) or d.get("schema") != REPORTED_SCHEMA:
            continue
        source = d.get("source")
        if not isinstance(source, str) or not source:
            raise QrobenchError(f"{path}: reported numbers need a 'source' saying where they were published")
        for i, row in enumerate(d.get("rows", [])):
            missing = [k for k in REQUIRED_REPORTED_FIELDS if k not in row]
            if missing:
                raise QrobenchError(f"{path}: row {i} lacks field(s) {', '.join(missing)}")
            rows.append({**row, "source": d.get("short_source", source), "source_full": source,
                         "eps": d.get("eps", row.get("eps")), "n": row.get("n", d.get("n")),
                         "protocol_note": d.get("protocol_note", ""), "path": path})
    return rows


def read_cards(zoo_dir: str | os.PathLike | None) -> tuple[dict[str, ModelCard], list[str]]:
    """The zoo's cards by name, and the problems with cards that could not be read."""
    if zoo_dir is None or not Path(zoo_dir).is_dir():
        return {}, []
    cards, invalid = {}, []
    for path in sorted(Path(zoo_dir).glob("*.json")):
        try:
            card = ModelCard.read(path)
        except ModelCardError as e:
            invalid.append(str(e))
            continue
        cards[card.name] = card
    return cards, invalid


def is_stale(result: ResultFile, cards: dict[str, ModelCard]) -> bool:
    """The model's card now names a different checkpoint than the one that was evaluated."""
    card = cards.get(result.model)
    return card is not None and result.card_sha256 is not None and result.card_sha256 != card.sha256


def same_eps(a: float, b: float) -> bool:
    return abs(float(a) - float(b)) < EPS_TOL


def pick_one(results: list[ResultFile], cards: dict[str, ModelCard]) -> ResultFile:
    """Of several results for one key: up to date first, then most points, then the
    largest battery (the strongest worst case), then the newest."""
    return max(results, key=lambda r: (not is_stale(r, cards), int(r.result.n), len(r.result.robust_acc),
                                       str(r.result.timestamp or ""), str(r.path)))


class ResultKey(NamedTuple):
    """What makes two results measurements of the same thing. A result at another threat model
    or on another data set is a different number, never a rival for the same cell."""

    model: str
    threat_model: str
    eps: float
    dataset: str


def key_of(r: ResultFile) -> ResultKey:
    d = r.result
    return ResultKey(r.model, d.threat_model, float(d.eps), d.dataset)


def _same_key(a: ResultKey, b: ResultKey) -> bool:
    return (a.model, a.threat_model, a.dataset) == (b.model, b.threat_model, b.dataset) and same_eps(a.eps, b.eps)


def select_per_key(results: list[ResultFile], cards: dict[str, ModelCard],
                   with_attacks: bool = False) -> dict[ResultKey, ResultFile]:
    """The one selection pass: one result per (model, threat model, ε, dataset) by :func:`pick_one`,
    in key order. Every report reads its rows from here so that the table, the summary, the ε
    curves and the Findings all speak of the same file. ``with_attacks``: only results that
    measured attacks compete (a curve point needs a worst case; a clean-only run has none)."""
    groups: dict[ResultKey, list[ResultFile]] = {}
    for r in results:
        if with_attacks and not r.result.robust_acc:
            continue
        k = key_of(r)
        k = next((g for g in groups if _same_key(g, k)), k)  # ε within EPS_TOL is one ε
        groups.setdefault(k, []).append(r)
    return {k: pick_one(rs, cards) for k, rs in sorted(groups.items())}


def at_eps(picked: dict[ResultKey, ResultFile], eps: float, threat_model: str = DEFAULT_THREAT_MODEL,
           dataset: str = DEFAULT_DATASET) -> list[ResultFile]:
    """The selected results of one (threat model, ε, dataset) slice, by model name: one table."""
    return [r for k, r in picked.items()
            if k.threat_model == threat_model and k.dataset == dataset and same_eps(k.eps, eps)]


@dataclass
class Selection:
    """The selection pass's output, computed once per build and handed to every consumer."""

    per_key: dict[ResultKey, ResultFile]  # one per (model, threat model, ε, dataset)
    with_attacks: dict[ResultKey, ResultFile]  # the same among results that measured attacks
    rows: list[ResultFile]  # the table's slice: one per model at (threat model, ε, dataset), by name
    eps: float
    threat_model: str = DEFAULT_THREAT_MODEL
    dataset: str = DEFAULT_DATASET
    cards: dict[str, ModelCard] = field(default_factory=dict)

    def curves(self) -> dict[str, dict[float, float]]:
        """model → (ε → worst case) in the table's threat model and data set."""
        return worst_case_curves(self.with_attacks, self.threat_model, self.dataset)

    def per_model(self) -> list[ResultFile]:
        """One result per model whatever the key, for properties of the weights (sparsity, size),
        which no attack budget changes; the best of the per-key picks is the best of all."""
        by_model: dict[str, list[ResultFile]] = {}
        for k, r in self.per_key.items():
            by_model.setdefault(k.model, []).append(r)
        return [pick_one(rs, self.cards) for _, rs in sorted(by_model.items())]


def select(results: list[ResultFile], cards: dict[str, ModelCard], eps: float,
           threat_model: str = DEFAULT_THREAT_MODEL, dataset: str = DEFAULT_DATASET) -> Selection:
    """Run the selection pass once for a leaderboard at (threat model, ε, dataset)."""
    per_key = select_per_key(results, cards)
    return Selection(per_key, select_per_key(results, cards, with_attacks=True),
                     at_eps(per_key, eps, threat_model, dataset), eps, threat_model, dataset, cards)


def pick_per_eps(results: list[ResultFile], cards: dict[str, ModelCard]) -> dict[ResultKey, ResultFile]:
    """One result with attacks per key (see :func:`select_per_key`); kept for ``qrobench diagnose``."""
    return select_per_key(results, cards, with_attacks=True)


def worst_case_curves(picked: dict[ResultKey, ResultFile], threat_model: str = DEFAULT_THREAT_MODEL,
                      dataset: str = DEFAULT_DATASET) -> dict[str, dict[float, float]]:
    """model → (ε → worst case) within one threat model and data set: the ε curves the
    diagnostics read (a curve across two threat models would compare unlike budgets)."""
    curves: dict[str, dict[float, float]] = {}
    for k, r in picked.items():
        if k.threat_model == threat_model and k.dataset == dataset:
            curves.setdefault(k.model, {})[k.eps] = r.result.worst_case_acc
    return curves
