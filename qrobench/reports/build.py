"""Build every leaderboard output from a results folder: Markdown, CSV, JSON, HTML and plots.

Each file is written to a temporary name and renamed, so an interrupted build never leaves
a half-written leaderboard, and result files are only ever read.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from ..files import atomic_write_text
from ..protocol import LEADERBOARD_EPS
from .collect import find_reported, find_results, read_cards, select
from .html import to_html
from .leaderboard import (
    DEFAULT_SORT,
    build_table,
    eps_curves,
    filter_table,
    model_table,
    sort_table,
)
from .plots import write_plots, write_study_plots
from .render import to_csv, to_json, to_markdown
from .studies import Studies, collect_studies
from .summary import RunsSummary, summarize_runs

OUTPUT_STEM = "leaderboard"


@dataclass
class Leaderboard:
    table: pd.DataFrame
    curves: pd.DataFrame
    models: pd.DataFrame  # one row per model at any ε (weight properties)
    summary: RunsSummary
    n_files: int
    studies: Studies | None = None  # sweeps, per-layer weights and the Findings (studies.py)
    files: list[Path] = field(default_factory=list)


def collect_leaderboard(results_dir="results", zoo_dir=None, eps: float = LEADERBOARD_EPS,
                        sort: str = DEFAULT_SORT, filters=(), reported: bool = True) -> Leaderboard:
    """Read the results folder (and the zoo's cards, for staleness) into the sorted table."""
    root = Path(results_dir)
    results = find_results(root)
    cards, invalid = read_cards(zoo_dir)
    refs = find_reported(root) if reported else []
    sel = select(results, cards, eps)  # the one selection pass every output below reads
    table = build_table(sel, cards, refs, root=root)
    table = filter_table(sort_table(table, sort), filters)
    summary = summarize_runs(results, sel, cards, invalid, root=root)
    models, curves = model_table(sel, cards, root), eps_curves(sel)
    if filters:  # the plots show the rows the filters kept
        keep = set(table["model"])
        models, curves = models[models["model"].isin(keep)], curves[curves["model"].isin(keep)]
    studies = collect_studies(root, {rf.model: rf.result for rf in sel.rows}, cards)
    return Leaderboard(table, curves, models, summary, len(results), studies)


def write_leaderboard(results_dir="results", output_dir=None, zoo_dir=None, eps: float = LEADERBOARD_EPS,
                      sort: str = DEFAULT_SORT, filters=(), reported: bool = True,
                      plots: bool = True) -> Leaderboard:
    """Write ``leaderboard.{md,csv,json,html}`` and ``plots/*.{png,svg}`` into ``output_dir``
    (default: the results folder)."""
    lb = collect_leaderboard(results_dir, zoo_dir, eps, sort, filters, reported)
    out = Path(output_dir) if output_dir is not None else Path(results_dir)
    out.mkdir(parents=True, exist_ok=True)
    # the plots draw every measured row, ranked or provisional, in worst-case order whatever the
    # table's order (ranked rows first), so that a row's rank never changes a plot
    measured = lb.table[lb.table["status"] == "measured"].sort_values(
        by=["worst_case_pct", "model"], ascending=[False, True], na_position="last", kind="mergesort")
    drawn = write_plots(measured, lb.curves, out / "plots", lb.models) if plots else {}
    if plots and lb.studies is not None:
        drawn.update(write_study_plots(lb.studies, out / "plots"))
    st = lb.studies
    for paths in drawn.values():
        lb.files += paths
    lb.files += [
        atomic_write_text(out / f"{OUTPUT_STEM}.md", to_markdown(lb.table, lb.summary, eps, sort, drawn, lb.n_files,
                                                                  st)),
        atomic_write_text(out / f"{OUTPUT_STEM}.csv", to_csv(lb.table)),
        atomic_write_text(out / f"{OUTPUT_STEM}.json", to_json(lb.table, lb.summary, eps, sort, filters, lb.curves,
                                                              st)),
        atomic_write_text(out / f"{OUTPUT_STEM}.html", to_html(lb.table, lb.summary, eps, sort, drawn, lb.n_files,
                                                              st)),
    ]
    return lb
