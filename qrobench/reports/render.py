"""Leaderboard renderers: Markdown (for the repository), CSV and JSON (for tools). The columns
come from columns.py and the Markdown's sections from outline.py, shared with the HTML page.

Outputs carry no timestamp, so regenerating the leaderboard from unchanged result files
gives byte-identical files and a pull request shows only real changes.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass

import pandas as pd
from tabulate import tabulate

from .._version import __version__
from ..engine.diagnostics import FLAG_HELP as DIAGNOSTIC_FLAGS
from ..protocol import eps_text
from .columns import RECIPE_WIDTH, data_keys, missing, view
from .outline import OUTLINE, Section
from .studies import Studies
from .studies import render as studies_render
from .summary import RunsSummary

NOTE_PROVISIONAL = ("Not ranked: these rows were measured without the AutoAttack of their standard battery "
                    "(`aa`, or `aa-rand` for a randomised model), so their worst case is an upper bound that "
                    "AutoAttack may lower. As on RobustBench, only AutoAttack-evaluated rows are ranked; "
                    "rank numbers count ranked rows only. `lacks`: the attacks of the standard battery the "
                    "row was not measured with (the runs summary says how to add them).")
NOTE_REPORTED = ("Rows marked “reported” are published numbers typed from the paper named in the "
                 "source column, under that paper's protocol (I-FGSM-20 and the papers' weak C&W); "
                 "qrobench did not measure them, they have no worst case, and they are not ranked.")


FLAG_HELP = {
    **DIAGNOSTIC_FLAGS,
    "no-eot": "a randomised model measured without an EOT attack (eot-pgd20 or aa-rand)",
    "no-autoattack": "measured without AutoAttack (aa, or aa-rand for a randomised model): the worst case is "
                     "an upper bound that the full battery may lower, so the row is not ranked but listed "
                     "under Provisional (the runs summary says what is missing)",
    "cascade": "measured with --cascade: each attack ran only on the points the earlier ones left standing, "
               "so the per-attack columns are cumulative (the worst case is exact)",
    "cascade-from": "some attacks (their columns n/a) ran only on the points the row's other attacks left standing "
                    "(--cascade-from), to save compute: the worst case is exact, those attacks' own accuracies "
                    "are unknown",
    "bf16-gradients": "the PGD family's gradient passes ran in bfloat16 (--grad-precision bf16); every success "
                      "was still decided in fp32, but the bf16 gradient may make the attacks slightly weaker",
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
    return out


def protocol_line(df: pd.DataFrame, eps: float, sort: str) -> str:
    by = "worst-case robust accuracy" if sort.split(":")[0] == "worst_case" else f"'{sort}'"
    return (f"CIFAR-10, L∞ ε = {eps_text(eps)}, the first n test points, model in eval mode; "
            f"sorted by {by}. Accuracies in %; randomised models show mean ± std over seeds; "
            "[low, high] is the 95 % interval (Wilson over the n points; for randomised models "
            "widened by the seed spread, t·s/√k). Worst case: a point counts as robust only if it "
            "survives every attack in its battery. Group: rows whose worst case is not significantly "
            "different (paired McNemar / sign-flip test on the per-point outcomes, 5 %) from the row "
            "above share a group; '—' where a result holds no per-point outcomes. Only rows measured with "
            "AutoAttack (aa; aa-rand for randomised models) are ranked and grouped; the others are listed "
            "under Provisional, below the ranked table.")


@dataclass
class Document:
    """What every section of the outline may draw on, so one renderer signature serves them all."""

    table: pd.DataFrame
    summary: RunsSummary | None
    eps: float
    sort: str
    plots: dict | None = None
    n_files: int = 0
    studies: Studies | None = None


def provisional(df: pd.DataFrame) -> pd.Series:
    """The measured rows that are not ranked (no AutoAttack of their battery): the Provisional block."""
    return (df["status"] == "measured") & ~df["ranked"].fillna(False).astype(bool)


def _table(df: pd.DataFrame, which: str, attacks=None) -> str:
    cols = view(which, df.attrs.get("attacks", []) if attacks is None else attacks)
    rows = [[col.cell(r, name, RECIPE_WIDTH) for col, name, _ in cols] for _, r in df.iterrows()]
    return tabulate(rows, headers=[h for _, _, h in cols], tablefmt="github", disable_numparse=True)


def _intro(doc: Document, s: Section) -> list[str]:
    return [f"# {s.title}", "", protocol_line(doc.table, doc.eps, doc.sort), ""]


def _ranked(doc: Document, s: Section) -> list[str]:
    df = doc.table
    if not len(df):
        return ["_No results at this ε yet: run `qrobench run` or `qrobench submit` first._", ""]
    shown = df[~provisional(df)]
    if not len(shown):
        return ["_No row is ranked yet: every row lacks AutoAttack (see Provisional below)._", ""]
    return [_table(shown, "compact", df.attrs.get("attacks", [])), ""]


def _provisional(doc: Document, s: Section) -> list[str]:
    df = doc.table
    rows = df[provisional(df)] if len(df) else df
    if not len(rows):
        return []
    return [f"## {s.title}", "", NOTE_PROVISIONAL, "", _table(rows, "provisional", df.attrs.get("attacks", [])), ""]


def _all(doc: Document, s: Section) -> list[str]:
    df = doc.table
    return [f"## {s.title}", "", _table(df, "full"), ""] if len(df) else []


def _flags(doc: Document, s: Section) -> list[str]:
    flags = flag_lines(doc.table) if len(doc.table) else []
    if not flags:
        return []
    out = [f"## {s.title}", ""] if s.markdown_heading else []
    out += ["Flags (`qrobench diagnose` and the result records; a row's reasons are in the `diagnosis` "
            "column of the CSV/JSON and the HTML tooltip):", ""]
    return out + [f"- **{f}**: {text}" for f, text in flags] + [""]


def _reported(doc: Document, s: Section) -> list[str]:
    return [NOTE_REPORTED, ""] if (doc.table["status"] == "reported").any() else []


def _stale(doc: Document, s: Section) -> list[str]:
    df = doc.table
    if "stale" in df and df["stale"].any():
        return ["Rows flagged *stale* were measured on a checkpoint the zoo no longer holds.", ""]
    return []


def _built(doc: Document, s: Section) -> list[str]:
    return [f"Built by qrobench {__version__} from {doc.n_files} result file(s); CSV, JSON and a sortable "
            "HTML page sit beside this file.", ""]


def _summary(doc: Document, s: Section) -> list[str]:
    return [f"## {s.title}", "", *doc.summary.lines(), ""] if doc.summary is not None else []


def _plots(doc: Document, s: Section) -> list[str]:
    if not doc.plots:
        return []
    return [f"## {s.title}", "", *[f"![{name}](plots/{name}.png)" for name in doc.plots], ""]


def studies_section(renderers: dict) -> Callable[[Document, Section], list[str]]:
    """A study's section in one back-end: nothing when the build has no studies."""
    return lambda doc, s: renderers[s.key](doc.studies, s.title) if doc.studies is not None else []


MARKDOWN_SECTIONS: dict[str, Callable[[Document, Section], list[str]]] = {
    "intro": _intro, "ranked": _ranked, "provisional": _provisional, "all": _all, "flags": _flags, "reported": _reported, "stale": _stale,
    "built": _built, "summary": _summary, **{k: studies_section(studies_render.MARKDOWN) for k in studies_render.MARKDOWN},
    "plots": _plots,
}


def to_markdown(df: pd.DataFrame, summary: RunsSummary | None, eps: float, sort: str,
                plots: dict | None = None, n_files: int = 0, studies: Studies | None = None) -> str:
    doc = Document(df, summary, eps, sort, plots, n_files, studies)
    return "\n".join(line for s in OUTLINE for line in MARKDOWN_SECTIONS[s.key](doc, s))


def to_csv(df: pd.DataFrame) -> str:
    cols = data_keys(df.attrs.get("attacks", []), "csv")
    return df[cols].to_csv(index=False, float_format="%.4f", lineterminator="\n")


def _jsonable(v):
    if missing(v):
        return None
    if hasattr(v, "item"):
        v = v.item()
    if isinstance(v, float):
        return round(v, 4)
    return v


def _records(df: pd.DataFrame, cols=None) -> list[dict]:
    df = df if cols is None else df[cols]
    return [{k: _jsonable(v) for k, v in rec.items()} for rec in df.to_dict(orient="records")]


def to_json(df: pd.DataFrame, summary: RunsSummary | None, eps: float, sort: str, filters,
            curves: pd.DataFrame | None = None, studies: Studies | None = None) -> str:
    rows = _records(df, data_keys(df.attrs.get("attacks", []), "json"))
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
    if studies is not None:
        doc.update(studies_render.json_doc(studies))
    return json.dumps(doc, indent=2, ensure_ascii=False) + "\n"
