"""Leaderboard renderers: Markdown (for the repository), CSV and JSON (for tools).

Outputs carry no timestamp, so regenerating the leaderboard from unchanged result files
gives byte-identical files and a pull request shows only real changes.
"""

from __future__ import annotations

import json
import math

import pandas as pd
from tabulate import tabulate

from .._version import __version__
from ..engine.diagnostics import FLAG_HELP as DIAGNOSTIC_FLAGS
from ..protocol import AUTOATTACK as AUTOATTACK_STANDARD
from ..protocol import AUTOATTACK_RAND, eps_text
from .summary import RunsSummary

RECIPE_WIDTH = 60
NOTE_REPORTED = ("Rows marked “reported” are published numbers typed from the paper named in the "
                 "source column, under that paper's protocol (I-FGSM-20 and the papers' weak C&W); "
                 "qrobench did not measure them, they have no worst case, and they are not ranked.")


def _missing(v) -> bool:
    return v is None or v is pd.NA or (isinstance(v, float) and math.isnan(v))


def _pct(v, std, repeats, lo=None, hi=None) -> str:
    if _missing(v):
        return "—"
    s = f"{v:.2f}"
    if not _missing(std) and repeats and repeats > 1:
        s += f" ± {std:.2f}"
    if not _missing(lo) and not _missing(hi):
        s += f" [{lo:.1f}, {hi:.1f}]"
    return s


def _short(text: str, width: int = RECIPE_WIDTH) -> str:
    text = str(text or "")
    return text if len(text) <= width else text[: width - 1] + "…"


AUTOATTACK = (AUTOATTACK_STANDARD, AUTOATTACK_RAND)  # the deterministic and the randomised model's
FLAG_HELP = {
    **DIAGNOSTIC_FLAGS,
    "no-eot": "a randomised model measured without an EOT attack (eot-pgd20 or aa-rand)",
    "no-autoattack": "measured without AutoAttack (aa, or aa-rand for a randomised model): the worst case is "
                     "an upper bound that the full battery may lower, so the row's rank is provisional "
                     "(the runs summary says what is missing)",
    "cascade": "measured with --cascade: each attack ran only on the points the earlier ones left standing, "
               "so the per-attack columns are cumulative (the worst case is exact)",
    "low-clean-accuracy": "clean accuracy below the 20 % floor: robust numbers of a broken model mean little",
    "stale": "measured on a checkpoint the zoo no longer holds (the card's sha256 changed)",
    "submitted": "an outside submission (qrobench submit)",
    "no-card": "submitted without a model card",
    "reported": "published numbers typed from a paper, not measured here",
}


def flag_lines(df: pd.DataFrame) -> list[tuple[str, str]]:
    """(flag, meaning) for every flag that appears in the table, in a fixed order."""
    seen = {f.strip() for text in df["flags"].fillna("") for f in str(text).split(",") if f.strip()}
    out = [(f, FLAG_HELP[f]) for f in FLAG_HELP if f in seen]
    out += [(f, "an attack met all-zero or non-finite input gradients on more than 5 % of points")
            for f in sorted(seen) if f.startswith("zero-gradients:")]
    return out  # the deterministic and the randomised model's AutoAttack


def compact_columns(df: pd.DataFrame) -> list[tuple[str, str]]:
    """(key, header) pairs of the table read at a glance (the full one follows it)."""
    return [("rank", "rank"), ("group", "group"), ("model", "model"), ("bits", "bits"), ("size_kb", "size KB"),
            ("clean", "clean %"), ("autoattack", "AutoAttack %"), ("worst_case", "worst case %"),
            ("sparsity", "sparsity %"), ("channel_sparsity", "channel sparsity %"), ("flags", "flags")]


def display_columns(df: pd.DataFrame) -> list[tuple[str, str]]:
    """(key, header) pairs of the human-facing table."""
    attacks = df.attrs.get("attacks", [])
    return [("rank", "rank"), ("group", "group"), ("model", "model"), ("source", "source"), ("architecture", "architecture"),
            ("ensemble", "ensemble"), ("precision", "precision"), ("bits", "bits"), ("recipe", "recipe"),
            ("train_h", "train h"), ("clean", "clean %"), *[(a, f"{a} %") for a in attacks], ("worst_case", "worst case %"),
            ("sparsity", "sparsity %"), ("channel_sparsity", "channel sparsity %"), ("size_kb", "size KB"),
            ("compression", "compression ×"), ("n", "n"), ("flags", "flags"), ("version", "qrobench")]


def display_cell(row: pd.Series, key: str, width: int | None = RECIPE_WIDTH) -> str:
    """The text of one cell as the Markdown and HTML tables show it."""
    rep = row.get("repeats", 1)
    if key == "autoattack":
        key = next((a for a in AUTOATTACK if not _missing(row.get(f"{a}_pct"))), AUTOATTACK[0])
        if _missing(row.get(f"{key}_pct")):
            return "—"
    if key in ("clean", "worst_case") or f"{key}_std_pct" in row.index:
        return _pct(row.get(f"{key}_pct"), row.get(f"{key}_std_pct"), rep, row.get(f"{key}_lo_pct"),
                    row.get(f"{key}_hi_pct"))
    v = row.get(key)
    if key in ("sparsity", "channel_sparsity"):
        return _pct(row.get(f"{key}_pct"), None, 1)
    if _missing(v):
        return "—"
    if key == "bits":
        return f"{v:g}" if float(v).is_integer() else f"{v:.2f}"
    if key == "size_kb":
        return f"{v:.1f}"
    if key == "train_h":
        return f"{v:.2f}"
    if key == "compression":
        return f"{v:.1f}×"
    if key in ("rank", "group", "n", "ensemble"):
        return str(int(v))
    if key == "model" and row.get("status") == "reported":
        return f"{v} (reported)"
    if key == "recipe" and width:
        return _short(v, width)
    return str(v)


def protocol_line(df: pd.DataFrame, eps: float, sort: str) -> str:
    by = "worst-case robust accuracy" if sort.split(":")[0] == "worst_case" else f"'{sort}'"
    return (f"CIFAR-10, L∞ ε = {eps_text(eps)}, the first n test points, model in eval mode; "
            f"sorted by {by}. Accuracies in %; randomised models show mean ± std over seeds; "
            "[low, high] is the 95 % interval (Wilson over the n points; for randomised models "
            "widened by the seed spread, t·s/√k). Worst case: a point counts as robust only if it "
            "survives every attack in its battery. Group: rows whose worst case is not significantly "
            "different (paired McNemar / sign-flip test on the per-point outcomes, 5 %) from the row "
            "above share a group; '—' where a result holds no per-point outcomes.")


def _table(df: pd.DataFrame, cols) -> str:
    rows = [[display_cell(r, k) for k, _ in cols] for _, r in df.iterrows()]
    return tabulate(rows, headers=[h for _, h in cols], tablefmt="github", disable_numparse=True)


def to_markdown(df: pd.DataFrame, summary: RunsSummary | None, eps: float, sort: str,
                plots: dict | None = None, n_files: int = 0, sections: list[str] | None = None) -> str:
    out = ["# qrobench leaderboard", "", protocol_line(df, eps, sort), ""]
    if len(df):
        out += [_table(df, compact_columns(df)), "", "## All columns", "", _table(df, display_columns(df)), ""]
    else:
        out += ["_No results at this ε yet: run `qrobench run` or `qrobench submit` first._", ""]
    flags = flag_lines(df) if len(df) else []
    if flags:
        out += ["Flags (`qrobench diagnose` and the result records; a row's reasons are in the `diagnosis` "
                "column of the CSV/JSON and the HTML tooltip):", ""]
        out += [f"- **{f}**: {text}" for f, text in flags]
        out.append("")
    if (df["status"] == "reported").any():
        out += [NOTE_REPORTED, ""]
    if "stale" in df and df["stale"].any():
        out += ["Rows flagged *stale* were measured on a checkpoint the zoo no longer holds.", ""]
    out += [f"Built by qrobench {__version__} from {n_files} result file(s); CSV, JSON and a sortable "
            "HTML page sit beside this file.", ""]
    if summary is not None:
        out += ["## Runs summary", "", *summary.lines(), ""]
    if sections:
        out += sections
    if plots:
        out += ["## Plots", ""]
        out += [f"![{name}](plots/{name}.png)" for name in plots]
        out.append("")
    return "\n".join(out)


def to_csv(df: pd.DataFrame) -> str:
    return df.drop(columns=["stale"]).to_csv(index=False, float_format="%.4f", lineterminator="\n")


def _jsonable(v):
    if _missing(v):
        return None
    if hasattr(v, "item"):
        v = v.item()
    if isinstance(v, float):
        return round(v, 4)
    return v


def _records(df: pd.DataFrame) -> list[dict]:
    return [{k: _jsonable(v) for k, v in rec.items()} for rec in df.to_dict(orient="records")]


def to_json(df: pd.DataFrame, summary: RunsSummary | None, eps: float, sort: str, filters,
            curves: pd.DataFrame | None = None, studies: dict | None = None) -> str:
    rows = _records(df)
    doc = {
        "schema": "qrobench-leaderboard-v1",
        "qrobench_version": __version__,
        "eps": eps,
        "sort": sort,
        "filters": list(filters or []),
        "attacks": list(df.attrs.get("attacks", [])),
        "units": "accuracies and sparsities in percent (*_pct); size in KB",
        "rows": rows,
        "eps_curves": _records(curves) if curves is not None else [],
        "summary": summary.as_dict() if summary is not None else None,
    }
    if studies:
        doc.update(studies)
    return json.dumps(doc, indent=2, ensure_ascii=False) + "\n"
