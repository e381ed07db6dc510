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
from dataclasses import dataclass
from pathlib import Path

from ..engine.results import Result, is_result_dict
from ..errors import ModelCardError, QrobenchError
from ..zoo.card import ModelCard

REPORTED_SCHEMA = "qrobench-reported-v1"
# check/, reference/, sweeps/ and weights/ are read by their own readers; pieces/ holds the runs
# that a zoo result was merged from (its merged_from names them), which must not be listed beside it;
# fullset/ holds full-test-set runs of a partial battery, which must not displace a complete row.
SKIP_DIRS = ("check", "reference", "pieces", "sweeps", "weights", "fullset")
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
    """Of several results for one model and ε: up to date first, then most points, then the
    largest battery (the strongest worst case), then the newest."""
    return max(results, key=lambda r: (not is_stale(r, cards), int(r.result.n), len(r.result.robust_acc),
                                       str(r.result.timestamp or ""), str(r.path)))


def select(results: list[ResultFile], cards: dict[str, ModelCard], eps: float) -> list[ResultFile]:
    """One result per model at ``eps`` (see :func:`pick_one`), ordered by model name."""
    by_model: dict[str, list[ResultFile]] = {}
    for r in results:
        if same_eps(r.result.eps, eps):
            by_model.setdefault(r.model, []).append(r)
    return [pick_one(rs, cards) for _, rs in sorted(by_model.items())]


def pick_per_eps(results: list[ResultFile], cards: dict[str, ModelCard]) -> dict[tuple[str, float], ResultFile]:
    """One result per (model, ε) among those with attacks (see :func:`pick_one`), in (model, ε) order."""
    groups: dict[tuple[str, float], list[ResultFile]] = {}
    for r in results:
        if not r.result.robust_acc:
            continue
        key = next((k for k in groups if k[0] == r.model and same_eps(k[1], r.result.eps)),
                   (r.model, float(r.result.eps)))
        groups.setdefault(key, []).append(r)
    return {key: pick_one(rs, cards) for key, rs in sorted(groups.items())}


def worst_case_curves(picked: dict[tuple[str, float], ResultFile]) -> dict[str, dict[float, float]]:
    """model → (ε → worst case), from :func:`pick_per_eps`: the ε curves the diagnostics read."""
    curves: dict[str, dict[float, float]] = {}
    for (model, eps), r in picked.items():
        curves.setdefault(model, {})[eps] = r.result.worst_case_acc
    return curves
