"""The leaderboard table (pandas): one row per model at the leaderboard's ε, built from result files.

Accuracies are shown in percent (``*_pct`` columns); the result files hold fractions.
Published reference rows are added with ``status = "reported"``: they are typed from a
paper under its own protocol, never measured here, and have no worst case (a per-point
worst case cannot be computed from published marginals), so they are never ranked.
"""

from __future__ import annotations

import math
import re
from dataclasses import replace

import pandas as pd

from ..engine.diagnostics import findings_of
from ..engine.diagnostics import flags as diagnostic_flags
from ..errors import QrobenchError
from .collect import ResultFile, Selection, is_stale, same_eps
from .columns import (
    ASCENDING_BY_DEFAULT,
    INTERNAL_KEYS,
    NOT_ATTACKS,
    TEXT_KEYS,
    Measured,
    data_keys,
    is_ranked,
    make_row,
    pct,
)
from .stats import result_intervals, significance_groups

# Column order for attacks: the battery's order, then anything else alphabetically.
ATTACK_ORDER = ("fgsm", "pgd20", "ifgsm20", "cw", "cw-paper", "apgd-ce", "apgd-t", "fab-t", "square",
                "aa", "aa-rand", "eot-pgd20", "transfer")
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


def attack_columns(names) -> list[str]:
    names = set(names)
    return [a for a in ATTACK_ORDER if a in names] + sorted(names - set(ATTACK_ORDER))


def measured_row(r: ResultFile, cards: dict, root=None, curve: dict | None = None) -> dict:
    """Everything shown comes from the file (weight statistics were stored at run time); the
    flags add what the diagnostics and the staleness check find."""
    d = r.result
    stale = is_stale(r, cards)
    findings = findings_of(d, curve)
    flags = list(d.flags)
    flags += [f for f in diagnostic_flags(findings) if f not in flags]
    if d.robust_acc and not is_ranked(d):
        flags.append("no-autoattack")
    if stale:
        flags.append("stale")
    diagnosis = "; ".join(f"{f.check}: {f.reason}" for f in findings if f.status == "flag")
    return make_row(Measured(r, cards.get(r.model), stale, flags, diagnosis, loss_of(r.model, d.recipe),
                         result_intervals(d), root), "measured")


def reported_row(rep: dict) -> dict:
    return make_row(rep, "reported")


def build_table(sel: Selection, cards: dict, reported: list[dict] = (), root=None) -> pd.DataFrame:
    """One row per selected model at the selection's ε plus the reported rows at that ε, unsorted."""
    chosen, eps = sel.rows, sel.eps
    curves = sel.curves()
    rows = [measured_row(r, cards, root, curves.get(r.model)) for r in chosen]
    _add_groups(rows, chosen)
    rows += [reported_row(rep) for rep in reported if rep.get("eps") is None or same_eps(rep["eps"], eps)]
    attacks = attack_columns({k[:-4] for row in rows for k in row
                              if k.endswith("_pct") and not k.endswith(("_std_pct", "_lo_pct", "_hi_pct"))}
                             - NOT_ATTACKS)
    df = pd.DataFrame(rows, columns=data_keys(attacks))
    df["group"] = df["group"].astype("Int64")
    df.attrs["attacks"] = attacks
    return df


def _add_groups(rows: list[dict], chosen: list[ResultFile]) -> None:
    """``group``: ranked rows in worst-case order whose gap to the row above is not significant share
    a group (paired test on the per-point outcomes, stats.py); rows without outcomes get none, and
    so do provisional rows, which the ranked table does not hold."""
    order = sorted(range(len(rows)), key=lambda i: (-rows[i]["worst_case_pct"]
                                                     if not math.isnan(rows[i]["worst_case_pct"]) else math.inf,
                                                     rows[i]["model"]))
    scores = []
    for i in order:
        r = chosen[i].result
        ok = rows[i]["ranked"] and r.has_outcomes and r.robust_acc and r.first_index == 0
        scores.append(r.point_scores() if ok else None)
    for i, g in zip(order, significance_groups(scores), strict=True):
        rows[i]["group"] = g if g is not None else pd.NA


def model_table(sel: Selection, cards: dict, root=None) -> pd.DataFrame:
    """One row per model over all its results, whatever the ε: for properties of the weights
    (sparsity, size), which do not depend on the attack budget."""
    rows = [measured_row(r, cards, root) for r in sel.per_model()]
    return pd.DataFrame(rows) if rows else build_table(replace(sel, rows=[]), cards)


def sort_column(df: pd.DataFrame, key: str) -> str:
    for cand in (key, f"{key}_pct"):
        if cand in df.columns and not cand.endswith("_std_pct"):
            return cand
    valid = [c[:-4] if c.endswith("_pct") else c for c in df.columns
             if not c.endswith("_std_pct") and c not in INTERNAL_KEYS]
    raise QrobenchError(f"unknown column {key!r}; valid: {', '.join(valid)}")


def sort_table(df: pd.DataFrame, key: str = DEFAULT_SORT) -> pd.DataFrame:
    """Sort by ``key[:asc|desc]`` (missing values last, ties by model name), ranked rows first, then
    the provisional ones (measured without their battery's AutoAttack), then the reported ones, and
    number the ranked rows 1, 2, … in that order; the others get no rank."""
    name, _, direction = key.partition(":")
    if direction not in ("", "asc", "desc"):
        raise QrobenchError(f"--sort {key!r}: the direction after ':' must be asc or desc")
    col = sort_column(df, name.strip())
    base = col[:-4] if col.endswith("_pct") else col
    ascending = (base in ASCENDING_BY_DEFAULT) if not direction else direction == "asc"
    out = df.sort_values(by=[col, "model"], ascending=[ascending, True], na_position="last",
                         kind="mergesort").reset_index(drop=True)
    measured = out["status"] == "measured"
    ranked = measured & out["ranked"].fillna(False).astype(bool)
    tier = pd.Series(2, index=out.index).mask(measured, 1).mask(ranked, 0)
    order = tier.sort_values(kind="mergesort").index
    out, ranked = out.loc[order].reset_index(drop=True), ranked.loc[order].reset_index(drop=True)
    out["rank"] = pd.array([pd.NA] * len(out), dtype="Int64")
    out.loc[ranked, "rank"] = range(1, int(ranked.sum()) + 1)
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


def eps_curves(sel: Selection) -> pd.DataFrame:
    """Worst-case robust accuracy per model and ε in the table's threat model and data set (one
    result per key), for the ε plot."""
    rows = []
    for k, r in sel.with_attacks.items():
        if (k.threat_model, k.dataset) != (sel.threat_model, sel.dataset):
            continue
        d, model, eps = r.result, k.model, k.eps
        rows.append({"model": model, "eps": eps, "eps_255": eps * 255, "clean_pct": pct(d.clean_acc),
                     "worst_case_pct": pct(d.worst_case_acc), "n": int(d.n), "precision": d.precision})
    return pd.DataFrame(rows, columns=["model", "eps", "eps_255", "clean_pct", "worst_case_pct", "n",
                                       "precision"])
