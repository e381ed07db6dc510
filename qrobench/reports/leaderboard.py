"""The leaderboard table (pandas): one row per model at the leaderboard's ε, built from result files.

Accuracies are shown in percent (``*_pct`` columns); the result files hold fractions.
Published reference rows are added with ``status = "reported"``: they are typed from a
paper under its own protocol, never measured here, and have no worst case (a per-point
worst case cannot be computed from published marginals), so they are never ranked.
"""

from __future__ import annotations

import math
import re

import pandas as pd

from ..engine.diagnostics import findings_of
from ..engine.diagnostics import flags as diagnostic_flags
from ..errors import QrobenchError
from ..protocol import AUTOATTACK, AUTOATTACK_RAND, LEADERBOARD_EPS, precision_bits
from .collect import (
    ResultFile,
    is_stale,
    pick_one,
    pick_per_eps,
    same_eps,
    select,
    worst_case_curves,
)
from .stats import result_intervals, significance_groups

# Column order for attacks: the battery's order, then anything else alphabetically.
ATTACK_ORDER = ("fgsm", "pgd20", "ifgsm20", "cw", "cw-paper", "apgd-ce", "apgd-t", "fab-t", "square",
                "aa", "aa-rand", "eot-pgd20", "transfer")
TEXT_KEYS = ("model", "status", "architecture", "precision", "recipe", "loss", "flags", "version", "source")
ASCENDING_BY_DEFAULT = {"model", "status", "architecture", "precision", "bits", "recipe", "loss",
                        "size_kb", "flags", "version", "source"}
DEFAULT_SORT = "worst_case"
_FILTER = re.compile(r"^\s*([A-Za-z0-9_.-]+?)\s*(<=|>=|!=|==|=|<|>|~)\s*(.*?)\s*$")


def loss_of(model: str, recipe: str | None) -> str:
    """Training loss family: adversarial (PGD/N-FGSM), tradeoff, natural, or other."""
    from ..zoo.naming import parse_zoo_name

    try:
        return parse_zoo_name(model).loss
    except QrobenchError:
        pass
    text = (recipe or "").lower()
    if "trade" in text:
        return "tradeoff"
    if "natural" in text:
        return "natural"
    if any(k in text for k in ("pgd", "fgsm", "adversarial")):
        return "adversarial"
    return "other"


def _pct(x) -> float:
    return 100.0 * float(x) if isinstance(x, (int, float)) else math.nan


def attack_columns(names) -> list[str]:
    names = set(names)
    return [a for a in ATTACK_ORDER if a in names] + sorted(names - set(ATTACK_ORDER))


def _train_hours(card) -> float:
    """Training wall time from the card (the budget behind the numbers), in hours."""
    t = (getattr(card, "training", None) or {}).get("train_time_s")
    return float(t) / 3600 if isinstance(t, (int, float)) else math.nan


def _num(x) -> float:
    return float(x) if isinstance(x, (int, float)) else math.nan


def measured_row(r: ResultFile, cards: dict, root=None, curve: dict | None = None) -> dict:
    d = r.result  # everything shown comes from the file (weight statistics were stored at run time)
    card = cards.get(r.model)
    stale = is_stale(r, cards)
    findings = findings_of(d, curve)
    flags = list(d.flags)
    flags += [f for f in diagnostic_flags(findings) if f not in flags]
    if d.robust_acc and not {AUTOATTACK, AUTOATTACK_RAND} & set(d.robust_acc):
        flags.append("no-autoattack")
    if stale:
        flags.append("stale")
    row = {
        "model": r.model, "status": "measured", "architecture": d.architecture,
        "ensemble": d.ensemble, "precision": d.precision,
        "bits": _num(d.bits), "recipe": d.recipe or "",
        "train_h": _train_hours(card),
        "loss": loss_of(r.model, d.recipe),
        "clean_pct": _pct(d.clean_acc), "clean_std_pct": _pct(d.std.clean_acc),
        "worst_case_pct": _pct(d.worst_case_acc) if d.robust_acc else math.nan,
        "worst_case_std_pct": _pct(d.std.worst_case_acc) if d.robust_acc else math.nan,
        "sparsity_pct": _pct(d.sparsity), "channel_sparsity_pct": _pct(d.channel_sparsity),
        "size_kb": _num(d.size_bytes) / 1024,
        "compression": _num(d.compression),
        "n": int(d.n), "eps": float(d.eps), "repeats": int(d.repeats),
        "flags": ", ".join(flags), "stale": stale,
        "version": d.qrobench_version,
        "diagnosis": "; ".join(f"{f.check}: {f.reason}" for f in findings if f.status == "flag"),
        "source": "measured", "card_sha256": d.card_sha256 or "",
        "file": str(r.path.relative_to(root)) if root is not None else str(r.path),
    }
    for a, acc in d.robust_acc.items():
        row[f"{a}_pct"] = _pct(acc)
        row[f"{a}_std_pct"] = _pct(d.std.robust_acc.get(a))
    _add_intervals(row, d)
    return row


def _add_intervals(row: dict, d) -> None:
    """``<key>_lo_pct`` / ``<key>_hi_pct``: the 95 % interval of every accuracy (stats.py)."""
    for key, (lo, hi) in result_intervals(d).items():
        row[f"{key}_lo_pct"], row[f"{key}_hi_pct"] = _pct(lo), _pct(hi)


def reported_row(rep: dict) -> dict:
    # a published float model's size is its architecture's float32 size, stored beside the
    # typed numbers (and checked against qrobench's own count by a test)
    fp_size = rep["precision"] == "fp" and isinstance(rep.get("size_bytes"), int)
    size_kb = rep["size_bytes"] / 1024 if fp_size else math.nan
    compression = 1.0 if fp_size else math.nan
    row = {
        "model": rep["model"], "status": "reported", "architecture": rep["architecture"],
        "ensemble": rep["ensemble"], "precision": rep["precision"],
        "bits": precision_bits(rep["precision"]) or math.nan, "recipe": rep.get("recipe", ""),
        "train_h": math.nan,
        "loss": rep.get("loss", "adversarial"), "clean_pct": _pct(rep["clean_acc"]),
        "clean_std_pct": math.nan, "worst_case_pct": math.nan, "worst_case_std_pct": math.nan,
        "sparsity_pct": math.nan, "channel_sparsity_pct": _pct(rep.get("channel_sparsity")),
        "size_kb": size_kb, "compression": compression,
        "n": rep["n"] if isinstance(rep.get("n"), int) else pd.NA,
        "eps": float(rep["eps"]) if rep.get("eps") is not None else math.nan, "repeats": 1,
        "flags": ", ".join(["reported", *rep.get("flags", [])]), "stale": False, "version": "", "diagnosis": "",
        "source": f"reported: {rep['source']}", "card_sha256": "",
        "file": str(rep.get("path", "")),
    }
    for a, acc in rep["robust_acc"].items():
        row[f"{a}_pct"] = _pct(acc)
        row[f"{a}_std_pct"] = math.nan
    return row


def build_table(results: list[ResultFile], cards: dict, reported: list[dict] = (),
                eps: float = LEADERBOARD_EPS, root=None) -> pd.DataFrame:
    """One row per model measured at ``eps`` plus the reported rows at that ε, unsorted."""
    chosen = select(results, cards, eps)
    curves = worst_case_curves(pick_per_eps(results, cards))
    rows = [measured_row(r, cards, root, curves.get(r.model)) for r in chosen]
    _add_groups(rows, chosen)
    rows += [reported_row(rep) for rep in reported if rep.get("eps") is None or same_eps(rep["eps"], eps)]
    attacks = attack_columns({k[:-4] for row in rows for k in row
                              if k.endswith("_pct") and not k.endswith(("_std_pct", "_lo_pct", "_hi_pct"))}
                             - {"clean", "worst_case", "sparsity", "channel_sparsity"})
    accs = ["clean", *attacks, "worst_case"]
    cols = ["rank", "group", "model", "status", "architecture", "ensemble", "precision", "bits", "recipe", "train_h",
            "loss", "clean_pct", *[f"{a}_pct" for a in attacks], "worst_case_pct", "sparsity_pct",
            "channel_sparsity_pct", "size_kb", "compression", "n", "eps", "repeats", "flags", "version",
            "source", "stale", "clean_std_pct", *[f"{a}_std_pct" for a in attacks], "worst_case_std_pct",
            *[f"{a}_{side}_pct" for a in accs for side in ("lo", "hi")], "diagnosis", "card_sha256", "file"]
    df = pd.DataFrame(rows, columns=cols)
    df["group"] = df["group"].astype("Int64")
    df.attrs["attacks"] = attacks
    return df


def _add_groups(rows: list[dict], chosen: list[ResultFile]) -> None:
    """``group``: rows in worst-case order whose gap to the row above is not significant share a
    group (paired test on the per-point outcomes, stats.py); rows without outcomes get none."""
    order = sorted(range(len(rows)), key=lambda i: (-rows[i]["worst_case_pct"]
                                                     if not math.isnan(rows[i]["worst_case_pct"]) else math.inf,
                                                     rows[i]["model"]))
    scores = []
    for i in order:
        r = chosen[i].result
        scores.append(r.point_scores() if r.has_outcomes and r.robust_acc and r.first_index == 0 else None)
    for i, g in zip(order, significance_groups(scores), strict=True):
        rows[i]["group"] = g if g is not None else pd.NA


def model_table(results: list[ResultFile], cards: dict, root=None) -> pd.DataFrame:
    """One row per model over all its results, whatever the ε: for properties of the weights
    (sparsity, size), which do not depend on the attack budget."""
    by_model: dict[str, list[ResultFile]] = {}
    for r in results:
        by_model.setdefault(r.model, []).append(r)
    rows = [measured_row(pick_one(rs, cards), cards, root) for _, rs in sorted(by_model.items())]
    return pd.DataFrame(rows) if rows else build_table([], cards)


def sort_column(df: pd.DataFrame, key: str) -> str:
    for cand in (key, f"{key}_pct"):
        if cand in df.columns and not cand.endswith("_std_pct"):
            return cand
    valid = [c[:-4] if c.endswith("_pct") else c for c in df.columns
             if not c.endswith("_std_pct") and c not in ("stale", "card_sha256", "file")]
    raise QrobenchError(f"unknown column {key!r}; valid: {', '.join(valid)}")


def sort_table(df: pd.DataFrame, key: str = DEFAULT_SORT) -> pd.DataFrame:
    """Sort by ``key[:asc|desc]`` (missing values last, ties by model name) and number the
    measured rows 1, 2, … in that order; reported rows get no rank."""
    name, _, direction = key.partition(":")
    if direction not in ("", "asc", "desc"):
        raise QrobenchError(f"--sort {key!r}: the direction after ':' must be asc or desc")
    col = sort_column(df, name.strip())
    base = col[:-4] if col.endswith("_pct") else col
    ascending = (base in ASCENDING_BY_DEFAULT) if not direction else direction == "asc"
    out = df.sort_values(by=[col, "model"], ascending=[ascending, True], na_position="last",
                         kind="mergesort").reset_index(drop=True)
    measured = out["status"] == "measured"
    out["rank"] = pd.array([pd.NA] * len(out), dtype="Int64")
    out.loc[measured, "rank"] = range(1, int(measured.sum()) + 1)
    out.attrs = dict(df.attrs)
    return out


def filter_table(df: pd.DataFrame, exprs) -> pd.DataFrame:
    """Keep rows matching every ``COLUMN OP VALUE`` (OP: = != < <= > >= ~ for 'contains')."""
    out = df
    for expr in exprs or ():
        m = _FILTER.match(expr)
        if not m:
            raise QrobenchError(f"--filter {expr!r} must look like COLUMN OP VALUE, e.g. 'bits<=4', "
                                "'precision=tnn', 'model~enres' (OP: = != < <= > >= ~)")
        key, op, value = m.groups()
        col = sort_column(out, key)
        series = out[col]
        if op == "~":
            mask = series.astype(str).str.contains(value, case=False, regex=False)
        elif col in TEXT_KEYS:
            if op not in ("=", "==", "!="):
                raise QrobenchError(f"--filter {expr!r}: column {key!r} is text; use =, != or ~")
            mask = series.astype(str) == value
            mask = ~mask if op == "!=" else mask
        else:
            try:
                v = float(value)
            except ValueError:
                raise QrobenchError(f"--filter {expr!r}: column {key!r} is numeric (accuracies in "
                                    f"percent), got {value!r}") from None
            s = pd.to_numeric(series, errors="coerce")
            mask = {"=": s == v, "==": s == v, "!=": s != v, "<": s < v, "<=": s <= v,
                    ">": s > v, ">=": s >= v}[op]
        out = out[mask.fillna(False).astype(bool)]
    out = out.reset_index(drop=True)
    out.attrs = dict(df.attrs)
    return out


def eps_curves(results: list[ResultFile], cards: dict) -> pd.DataFrame:
    """Worst-case robust accuracy per model and ε (one result per pair), for the ε plot."""
    rows = []
    for (model, eps), r in pick_per_eps(results, cards).items():
        d = r.result
        rows.append({"model": model, "eps": eps, "eps_255": eps * 255, "clean_pct": _pct(d.clean_acc),
                     "worst_case_pct": _pct(d.worst_case_acc), "n": int(d.n), "precision": d.precision})
    return pd.DataFrame(rows, columns=["model", "eps", "eps_255", "clean_pct", "worst_case_pct", "n",
                                       "precision"])
