"""Layer 1 of the studies: the numbers, gathered from the result files and nothing else.

Kept apart from the verdicts (findings.py) and the text (render.py) so that a number can be
checked, plotted or tabled without deciding anything about it, and so that a finding can only
ever read what is here.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd

from ...engine.results import Result, read_result
from ..stats import result_intervals, wilson

SWEEPS_DIR, WEIGHTS_DIR, FULLSET_DIR = "sweeps", "weights", "fullset"
BIT_ERRORS_DIR, BIT_FLIP_DIR = "threats/bit-errors", "threats/bit-flip"
BLOCK = 1000  # the zoo's n: the full test set is compared block by block of this size
NATURAL_SUFFIX = "-natural"
CHANCE = 0.1  # CIFAR-10: ten classes


def at_chance(r: Result) -> bool:
    """Clean accuracy indistinguishable from guessing (its Wilson interval holds 1/10): a collapsed
    model, whose "robust accuracy" only counts the points its constant answer happens to fit."""
    lo, hi = wilson(r.clean_acc, r.n)
    return bool(lo <= CHANCE <= hi)



def read_sweeps(root: Path, threat_model: str = "linf") -> dict[str, list[Result]]:
    """Sweep points under one threat model by source model, float first: every sweep rule
    compares against that point. Unmerged shards are left out, as their merged file holds the
    same points."""
    out: dict[str, list[Result]] = {}
    folder = root / SWEEPS_DIR
    for path in sorted(folder.rglob("*.json")) if folder.is_dir() else []:
        r = read_result(path)
        if r.sweep is None or r.shard is not None or r.threat_model != threat_model:
            continue
        out.setdefault(r.sweep["source"], []).append(r)
    for points in out.values():
        points.sort(key=lambda r: (r.sweep["method"] != "float", r.sweep["method"], r.sweep["bits_budget"]))
    return out


def bit_error_table(root: Path) -> pd.DataFrame:
    """One row per bit-error record (``results/threats/bit-errors``): mean ± std over the error
    patterns at each rate and the worst pattern, beside the model's bits and clean accuracy."""
    folder = root / BIT_ERRORS_DIR
    rows, attacked = {}, {}
    for path in sorted(folder.glob("*.json")) if folder.is_dir() else []:
        r = read_result(path)
        if r.threat_model != "bit-errors":
            continue
        first = next(iter(r.attacks.values()), {})
        key = (r.model, first.get("stored", ""))
        # an input attack under the errors (evaluate_bit_errors_attacked): columns of its model's row
        if "attack" in first:
            target = attacked.setdefault(key, {})
        else:
            target = rows.setdefault(key, {})
            target.update({"model": r.model, "precision": r.precision, "bits": stored_bits(r.bits, key[1]),
                           "stored": key[1], "clean_pct": 100 * r.clean_acc, "patterns": r.repeats, "n": r.n,
                           "file": path.name})
        for a, settings in r.attacks.items():
            tag = f"{settings['attack']}_ber{100 * settings['rate']:g}" if "attack" in settings \
                else f"ber{100 * settings['rate']:g}"
            target[f"{tag}_pct"] = 100 * r.robust_acc[a]
            target[f"{tag}_std_pct"] = 100 * r.std.robust_acc.get(a, 0.0)
            target[f"{tag}_worst_pct"] = 100 * min(s.robust_acc[a] for s in r.per_seed)
            if "attack" in settings:
                target[f"{tag}_patterns"], target[f"{tag}_n"] = r.repeats, r.n
    for key, cols in attacked.items():  # an attacked record without its unattacked one: a row of its own
        rows.setdefault(key, {"model": key[0], "precision": None, "bits": None, "stored": key[1], "clean_pct": None,
                              "patterns": None, "n": None, "file": None}).update(cols)
    return pd.DataFrame(list(rows.values()))


def stored_bits(model_bits: float, stored: str) -> float:
    """The width of the words a weight threat hit: a float model meets it in int8 post-training
    codes (or raw float32 words), a quantized one in its own codes."""
    if "int8" in stored:
        return 8.0
    if "float32" in stored:
        return 32.0
    return float(model_bits)


def bit_flip_table(root: Path) -> pd.DataFrame:
    """One row per bit-flip attack record (``results/threats/bit-flip``): flips needed (None: the
    cap was reached first), the cap, the accuracy reached and the bits of the stored codes."""
    folder = root / BIT_FLIP_DIR
    rows = []
    for path in sorted(folder.glob("*.json")) if folder.is_dir() else []:
        r = read_result(path)
        if r.threat_model != "bit-flip" or not r.weight_threat:
            continue
        w, s = r.weight_threat, r.attacks.get("bfa", {})
        rows.append({"model": r.model, "precision": r.precision, "bits": stored_bits(r.bits, s.get("stored", "")),
                     "stored": s.get("stored", ""),
                     "clean_pct": 100 * r.clean_acc, "flips": w.get("flips"), "cap": s.get("cap"),
                     "final_pct": 100 * w.get("final_test_acc", float("nan")), "target_pct": 100 * s.get("target_acc", 0),
                     "n": r.n, "file": path.name})
    return pd.DataFrame(rows)


def float_point(points: list[Result]) -> Result | None:
    return next((r for r in points if r.sweep["method"] == "float"), None)


def sweep_table(sweeps: dict[str, list[Result]]) -> pd.DataFrame:
    """One row per sweep point, with its drops against the float point only when both were
    measured on the same n (otherwise the difference would mix two samples)."""
    rows = []
    for source, points in sweeps.items():
        base = float_point(points)
        for r in points:
            lo, hi = wilson(r.worst_case_acc, r.n)
            row = {"source": source, "method": r.sweep["method"], "bits": r.sweep["bits_budget"],
                   "avg_bits": r.sweep["avg_bits"], "n": r.n, "attacks": ",".join(r.attacks),
                   "cascade": bool(r.cascade), "clean_pct": 100 * r.clean_acc, "at_chance": at_chance(r),
                   "worst_case_pct": 100 * r.worst_case_acc, "worst_lo": 100 * lo, "worst_hi": 100 * hi,
                   "sparsity_pct": 100 * (r.sparsity or 0.0)}
            if base is not None and base.n == r.n:
                row["clean_drop_pp"] = 100 * (base.clean_acc - r.clean_acc)
                row["clean_rel_drop_pct"] = 100 * (1 - r.clean_acc / base.clean_acc) if base.clean_acc else math.nan
                row["worst_drop_pp"] = 100 * (base.worst_case_acc - r.worst_case_acc)
                row["worst_rel_drop_pct"] = (100 * (1 - r.worst_case_acc / base.worst_case_acc)
                                             if base.worst_case_acc > 0 else math.nan)
            rows.append(row)
    return pd.DataFrame(rows)


def by_bits(points: list[Result], method: str) -> dict[int, Result]:
    """One method's points by bit budget, the unit at which two sweeps are compared."""
    return {r.sweep["bits_budget"]: r for r in points if r.sweep["method"] == method}


# -- the full test set ----------------------------------------------------------------------

def fullset_table(root: Path, zoo: dict[str, Result]) -> pd.DataFrame:
    """How far the zoo's first 1,000 points are from the whole test set: per merged run under
    ``results/fullset``, the worst case over its attacks on all points, on its own first 1,000,
    per block of 1,000, and the zoo's n = 1,000 result over the same attacks."""
    rows = []
    folder = root / FULLSET_DIR
    for path in sorted(folder.glob("*.json")) if folder.is_dir() else []:
        r = read_result(path)
        if r.shard is not None or not r.has_outcomes or r.first_index != 0 or r.n < 2 * BLOCK:
            continue
        worst = r.point_scores()
        clean = np.mean(np.stack(r.masks("clean")), 0)
        blocks = [100 * worst[i:i + BLOCK].mean() for i in range(0, r.n - BLOCK + 1, BLOCK)]
        lo, hi = wilson(float(worst.mean()), r.n)
        row = {"model": r.model, "attacks": ",".join(r.attacks), "n": r.n, "device": r.device,
               "clean_pct": 100 * clean.mean(), "clean_first_pct": 100 * clean[:BLOCK].mean(),
               "worst_pct": 100 * worst.mean(), "worst_lo": 100 * lo, "worst_hi": 100 * hi,
               "worst_first_pct": blocks[0], "block_min_pct": min(blocks), "block_max_pct": max(blocks),
               "zoo_worst_pct": math.nan, "file": str(path.relative_to(root))}
        for a in r.attacks:
            row[f"{a}_pct"] = 100 * float(np.mean(np.stack(r.masks(a)), 0).mean())
        z = zoo.get(r.model)
        if z is not None and z.has_outcomes and z.first_index == 0 and all(a in z.attacks for a in r.attacks):
            row["zoo_worst_pct"] = 100 * float(z.point_scores(list(r.attacks)).mean())
            row["zoo_n"] = z.n
        rows.append(row)
    return pd.DataFrame(rows)


def pair_models(weights: dict[str, dict]) -> list[str]:
    """Trade-off models beside their controls: the only pairs whose per-layer zeros are compared."""
    names = sorted(m for m in weights if m.endswith("-tradeoff"))
    out = []
    for n in names:
        out += [n, n[: -len("-tradeoff")]]
    return [m for m in out if m in weights]


def layer_groups(weights: dict[str, dict]) -> list[list[str]]:
    """The pair models grouped by architecture (the same quantized convs, by name): a table or plot
    panel per group, so that no layer is shown beside another network's layer of the same index."""
    groups: dict[tuple, list[str]] = {}
    for m in pair_models(weights):
        groups.setdefault(tuple(ly["layer"] for ly in weights[m]["layers"]), []).append(m)
    return list(groups.values())


# -- the threat models beside L∞ --------------------------------------------------------------

L2_DIR, CORRUPTIONS_DIR = "threats/l2", "threats/corruptions"
AUTOATTACKS = ("aa", "aa-rand")


def threat_results(root: Path, folder: str, token: str) -> list[tuple[Path, Result]]:
    """The whole (unsharded) records of one threat model under ``results/<folder>``, by file name."""
    d = root / folder
    out = []
    for path in sorted(d.glob("*.json")) if d.is_dir() else []:
        r = read_result(path)
        if r.threat_model == token and r.shard is None:
            out.append((path, r))
    return out


def l2_table(root: Path) -> pd.DataFrame:
    """One row per L2 record (``results/threats/l2``): clean, each attack, the worst case over the
    battery that was run with its interval, and whether that battery held AutoAttack: a row
    without it is provisional, as on the L∞ leaderboard (docs/protocol.md §6.6). A randomised
    model's worst case is the mean over its seeds, with their spread and, as on the L∞ table, an
    interval widened by it."""
    rows = []
    for path, r in threat_results(root, L2_DIR, "l2"):
        lo, hi = result_intervals(r)["worst_case"]
        row = {"model": r.model, "precision": r.precision, "bits": r.bits, "eps": r.eps, "clean_pct": 100 * r.clean_acc,
               "worst_case_pct": 100 * r.worst_case_acc, "worst_lo": 100 * lo, "worst_hi": 100 * hi,
               "worst_std": 100 * r.std.worst_case_acc if r.repeats > 1 else math.nan,
               "autoattack": next((a for a in AUTOATTACKS if a in r.robust_acc), None),
               "attacks": ",".join(r.attacks), "seeds": r.repeats, "n": r.n, "file": path.name}
        for a, acc in r.robust_acc.items():
            row[f"{a}_pct"] = 100 * acc
        rows.append(row)
    t = pd.DataFrame(rows)
    if len(t):
        t["ranked"] = t["autoattack"].notna()
    return t


def corruption_table(root: Path) -> pd.DataFrame:
    """One row per corruptions record (``results/threats/corruptions``): clean accuracy, the mean
    over the corruption × severity columns (RobustBench's corruptions metric: plain accuracy on
    the corrupted images), the mean per severity and per corruption, and the data source (the
    official arrays or the generated CIFAR-10-C-style set, which are not the same numbers)."""
    rows = []
    for path, r in threat_results(root, CORRUPTIONS_DIR, "corruptions"):
        c = r.corruptions or {}
        row = {"model": r.model, "precision": r.precision, "bits": r.bits, "clean_pct": 100 * r.clean_acc,
               "mean_pct": 100 * c.get("mean", float("nan")), "mean_std_pct": 100 * c.get("mean_std", 0.0),
               "columns": c.get("columns", len(r.attacks)), "source": c.get("source") or r.data_source.split(";")[0],
               "seeds": r.repeats, "n": r.n,
               "file": path.name}
        for s, acc in sorted((c.get("per_severity") or {}).items()):
            row[f"severity{s}_pct"] = 100 * acc
        for k, acc in (c.get("per_corruption") or {}).items():
            row[f"{k}_pct"] = 100 * acc
        rows.append(row)
    return pd.DataFrame(rows)


def corruption_scores(r: Result) -> np.ndarray:
    """Per point, the fraction of corruption columns (and seeds) it is classified correctly in:
    the per-point form of the corruptions mean, for paired tests."""
    return np.mean(np.stack([np.mean(np.stack(r.masks(a)), 0) for a in r.attacks]), 0)


def linf_autoattack(r: Result) -> str | None:
    return next((a for a in AUTOATTACKS if a in r.robust_acc), None)


def threat_summary(zoo: dict[str, Result], cards: dict, l2: pd.DataFrame, corruptions: pd.DataFrame,
                   bit_errors: pd.DataFrame, bit_flip: pd.DataFrame) -> pd.DataFrame:
    """One row per zoo model, one column per threat model: L∞ and L2 AutoAttack accuracy (or,
    without it, the worst case of the weaker battery that was run, an upper bound, flagged), the
    corruptions mean, the bit-error accuracy at p = 0.1 % and the BFA flips."""
    def by_model(t: pd.DataFrame, keep=None) -> dict:
        if not len(t):
            return {}
        t = t if keep is None else t[keep(t)]
        return {r["model"]: r for _, r in t.iterrows()}

    if not any(len(t) for t in (l2, corruptions, bit_errors, bit_flip)):
        return pd.DataFrame()  # L∞ alone: the leaderboard itself says it all
    l2_rows, corr_rows = by_model(l2), by_model(corruptions)
    ber_rows = by_model(bit_errors, lambda t: ~t["stored"].astype(str).str.contains("float32"))
    bfa_rows = by_model(bit_flip)
    rows = []
    for name in sorted(set(zoo) | set(l2_rows) | set(corr_rows) | set(ber_rows) | set(bfa_rows)):
        if cards and name not in cards:
            continue  # a retired or foreign model: the summary is the zoo's
        r = zoo.get(name)
        card = cards.get(name)
        training = getattr(card, "training", None) or {}
        row = {"model": name, "family": training.get("init_from") or name,
               # the family's line joins qrobench's own uniform-precision models; the rest are lone markers
               "on_line": bool(card is not None and card.precision != "mixed" and getattr(card, "format", "torch") == "torch"
                               and not name.endswith(("-tradeoff", NATURAL_SUFFIX))),
               "precision": getattr(card, "precision", None) or (r.precision if r else None),
               "bits": r.bits if r is not None else None, "clean_pct": 100 * r.clean_acc if r is not None else None}
        if r is not None:
            aa = linf_autoattack(r)
            row["linf_pct"] = 100 * (r.robust_acc[aa] if aa else r.worst_case_acc)
            row["linf_aa"] = aa is not None
        if name in l2_rows:
            t = l2_rows[name]
            aa = t["autoattack"] if isinstance(t["autoattack"], str) else None
            row["l2_pct"] = t[f"{aa}_pct"] if aa else t["worst_case_pct"]
            row["l2_aa"] = bool(aa)
            if row["bits"] is None:
                row["bits"] = t["bits"]
        if name in corr_rows:
            row["corruptions_pct"] = corr_rows[name]["mean_pct"]
            row["corruptions_source"] = corr_rows[name]["source"]
        for col in ("ber0.1_pct", "pgd20_ber0.1_pct"):
            if name in ber_rows and col in ber_rows[name] and not pd.isna(ber_rows[name][col]):
                row[col] = ber_rows[name][col]
        if name in bfa_rows:
            t = bfa_rows[name]
            row["bfa_flips"] = None if t["flips"] is None or pd.isna(t["flips"]) else int(t["flips"])
            row["bfa_cap"] = int(t["cap"]) if t["cap"] is not None else None
        rows.append(row)
    return pd.DataFrame(rows)
