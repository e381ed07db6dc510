"""The column spec and the outline drive every back-end: each output carries exactly the spec's
columns in the spec's order, and both documents follow the one outline."""

import io
import json
import re
from dataclasses import replace
from pathlib import Path

import pandas as pd
import pytest

from qrobench.engine.results import Result
from qrobench.reports import columns, html, render
from qrobench.reports.collect import ResultFile, select
from qrobench.reports.columns import NUMBER, Column, data_keys, view
from qrobench.reports.leaderboard import build_table, sort_table
from qrobench.reports.outline import OUTLINE

REPO = Path(__file__).resolve().parents[2]
REPORTED = {"model": "Paper20", "architecture": "resnet20", "ensemble": 1, "precision": "fp", "clean_acc": 0.8,
            "robust_acc": {"fgsm": 0.5, "ifgsm20": 0.45}, "source": "a paper", "eps": 8 / 255, "n": 10000}


def _table() -> pd.DataFrame:
    def rf(model, attacks, repeats=1):
        r = Result(model=model, n=1000, eps=8 / 255, precision="4bit", bits=4, repeats=repeats,
                   robust_acc=dict(attacks), worst_case_acc=min(attacks.values()), clean_acc=0.7,
                   size_bytes=2048, compression=8.0, sparsity=0.3, channel_sparsity=0.0, card_sha256="a")
        return ResultFile(Path(f"{model}.json"), r)

    rs = [rf("a", {"fgsm": 0.5, "pgd20": 0.4, "aa": 0.35}), rf("b", {"pgd20": 0.3, "square": 0.45})]
    return sort_table(build_table(select(rs, {}, 8 / 255), {}, [REPORTED]))


def _md_headers(text: str) -> list[list[str]]:
    """The header row of every GitHub table in a Markdown text."""
    lines = text.splitlines()
    return [[c.strip() for c in line.strip("|").split("|")] for line, nxt in zip(lines, lines[1:], strict=False)
            if line.startswith("|") and re.match(r"^\|[-:| ]+\|$", nxt)]


def _html_headers(text: str) -> list[list[str]]:
    return [re.findall(r"<th>(.*?)</th>", head) for head in re.findall(r"<thead><tr>\s*(.*?)\s*</tr></thead>", text, re.S)]


def _every_output(df):
    md = render.to_markdown(df, None, 8 / 255, "worst_case")
    page = html.to_html(df, None, 8 / 255, "worst_case")
    csv = pd.read_csv(io.StringIO(render.to_csv(df)))
    rows = json.loads(render.to_json(df, None, 8 / 255, "worst_case", []))["rows"]
    return md, page, csv, rows


def test_every_back_end_emits_exactly_the_spec_columns_in_order():
    df = _table()
    attacks = df.attrs["attacks"]
    assert attacks == ["fgsm", "pgd20", "ifgsm20", "square", "aa"]  # battery order
    md, page, csv, rows = _every_output(df)
    assert list(csv.columns) == data_keys(attacks, "csv")
    assert "stale" in data_keys(attacks, "json") and "stale" not in data_keys(attacks, "csv")
    assert all(list(r) == data_keys(attacks, "json") for r in rows)
    # the ranked table, the provisional one ("b" lacks aa) and the full one
    views = [[h for _, _, h in view(w, attacks)] for w in ("compact", "provisional", "full")]
    assert views[2][11:17] == ["clean %", "fgsm %", "pgd20 %", "ifgsm20 %", "square %", "aa %"]
    assert _md_headers(md) == views
    assert _html_headers(page) == views
    # the cells follow the spec's formats: the compact AutoAttack column, the reported row's name
    assert "| Paper20 (reported) |" in md and 'Paper20<span class="badge">reported</span>' in page
    aa = next(r for r in md.splitlines() if r.startswith("| 1 "))
    assert "35.00" in aa.split("|")[7]


def test_a_new_column_is_one_entry_in_the_spec(monkeypatch):
    extra = Column("double_n", "double n", NUMBER, lambda m: 2 * m.d.n, lambda rep: 2 * rep["n"],
                   lambda row, name, width: str(int(row[name])))
    monkeypatch.setattr(columns, "COLUMNS", (*columns.COLUMNS, extra))
    monkeypatch.setitem(columns.VIEWS, "full", (*columns.VIEWS["full"], "double_n"))
    df = _table()
    md, page, csv, rows = _every_output(df)
    assert list(csv.columns)[-1] == "double_n" and sorted(csv["double_n"]) == [2000, 2000, 20000]
    assert [r["double_n"] for r in rows] == list(csv["double_n"])
    assert _md_headers(md)[-1][-1] == "double n" and _html_headers(page)[-1][-1] == "double n"
    assert 'class="num" data-v="20000"' in page  # a number column sorts as a number


def test_sort_and_filter_semantics_come_from_the_spec():
    assert columns.TEXT_KEYS >= {"model", "status", "architecture", "precision", "recipe", "loss", "flags",
                                 "version", "source"}
    assert {"bits", "size_kb", "model"} <= columns.ASCENDING_BY_DEFAULT
    assert "worst_case" not in columns.ASCENDING_BY_DEFAULT
    assert columns.INTERNAL_KEYS == {"stale", "card_sha256", "file"}
    assert {c.name for c in columns.COLUMNS if c.over is None} >= {"clean", "worst_case", "n"}


def test_both_documents_render_every_section_of_the_outline():
    keys = [s.key for s in OUTLINE]
    assert len(set(keys)) == len(keys)
    assert set(render.MARKDOWN_SECTIONS) == set(keys) == set(html.HTML_SECTIONS)


def test_the_committed_documents_follow_the_outline():
    """The headings of the committed leaderboard (byte-identical to a rebuild, test_rebuild.py)
    appear in the outline's order, with the outline's titles, in both documents."""
    md = (REPO / "results" / "leaderboard.md").read_text()
    page = (REPO / "results" / "leaderboard.html").read_text()
    md_heads = re.findall(r"^#+ (.*)$", md, re.M)
    html_heads = re.findall(r"<h[12]>(.*?)</h[12]>", page)
    titled = [s.title for s in OUTLINE if s.title]
    assert md_heads == [t for t in titled if t in md_heads]
    assert html_heads == [t for t in titled if t in html_heads]
    assert set(titled) - set(html_heads) <= set() and "Flags" not in md_heads  # Markdown runs the flags into text


@pytest.mark.parametrize("which", ["markdown", "html"])
def test_moving_a_section_in_the_outline_moves_it_in_the_document(monkeypatch, which):
    df = _table()
    moved = (OUTLINE[0], next(s for s in OUTLINE if s.key == "flags"),
             *[s for s in OUTLINE[1:] if s.key != "flags"])
    renamed = tuple(replace(s, title="Every column") if s.key == "all" else s for s in moved)
    module = render if which == "markdown" else html
    monkeypatch.setattr(module, "OUTLINE", renamed)
    text = (render.to_markdown(df, None, 8 / 255, "worst_case") if which == "markdown"
            else html.to_html(df, None, 8 / 255, "worst_case"))
    flags = text.index("Flags (`qrobench diagnose`" if which == "markdown" else "<h2>Flags</h2>")
    assert flags < text.index("Every column") and "All columns" not in text
