"""The leaderboard as one self-contained HTML page: inline CSS and JS, plots embedded as data URIs.

Nothing is fetched when the page opens (no CDN, no fonts), so it works offline, from a CI
artifact or an e-mail attachment; clicking a column header sorts the table.
"""

from __future__ import annotations

import base64
import html
from pathlib import Path

import pandas as pd

from .._version import __version__
from .columns import NUMBER, RECIPE_WIDTH, Column, data_key, missing, view
from .outline import OUTLINE, Section
from .render import (
    NOTE_PROVISIONAL,
    NOTE_REPORTED,
    Document,
    flag_lines,
    protocol_line,
    provisional,
    studies_section,
)
from .studies import Studies
from .studies import render as studies_render
from .summary import RunsSummary

_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:24px;color:#1b1f23}
h1{font-size:1.5em;margin-bottom:4px} h2{font-size:1.15em;margin-top:28px}
p.note{color:#444;max-width:1100px;font-size:.92em}
table{border-collapse:collapse;font-size:.85em}
th,td{border:1px solid #d0d7de;padding:4px 6px;white-space:nowrap}
th{background:#f3f5f7;cursor:pointer;user-select:none}
th:hover{background:#e6eaef} th.asc::after{content:" \\25B2"} th.desc::after{content:" \\25BC"}
td.num{text-align:right;font-variant-numeric:tabular-nums}
td.flags{white-space:normal;min-width:12em} td.flags span{white-space:nowrap}
td.lacks{white-space:normal;min-width:5em}
td.prose{white-space:normal;min-width:24em}
tr:nth-child(even) td{background:#fafbfc}
tr.reported td{color:#555;font-style:italic;background:#fff8e6}
tr.stale td{background:#fdecec}
.badge{display:inline-block;font-size:.75em;font-style:normal;padding:0 5px;border-radius:8px;
margin-left:5px;background:#f0b429;color:#222}
.badge.stale{background:#e5534b;color:#fff}
.wrap{overflow-x:auto;max-width:100%;padding-bottom:2px}
.wrap::-webkit-scrollbar{height:11px} .wrap::-webkit-scrollbar-track{background:#f3f5f7}
.wrap::-webkit-scrollbar-thumb{background:#afb8c1;border-radius:6px} .wrap::-webkit-scrollbar-thumb:hover{background:#8c959f}
.plots img{max-width:48%;margin:6px;border:1px solid #eee}
ul{font-size:.92em}
"""

_JS = """
(function(){
  var PROSE=60;  /* a cell of more characters is a sentence: it wraps rather than widening its table */
  var MISSING={'':1,'\\u2014':1,'nan':1,'none':1};
  var LEADING=/^[\\u2264\\u2265<>~]?\\s*(-?\\d+(?:\\.\\d+)?(?:e-?\\d+)?)/;
  function value(td){if(!td) return null; var v=td.getAttribute('data-v');
    if(v===null) v=td.textContent; v=v.replace(/\\s+/g,' ').trim();
    return MISSING.hasOwnProperty(v.toLowerCase())?null:v;}
  function keys(rows,col){
    var vals=rows.map(function(r){return value(r.cells[col]);});
    var numeric=vals.every(function(v){return v===null||LEADING.test(v);});
    return vals.map(function(v){return v===null?null:numeric?parseFloat(LEADING.exec(v)[1]):v.toLowerCase();});}
  function sortable(table){
    if(!table.tHead||!table.tBodies.length) return;
    var heads=table.tHead.rows[0].cells;
    Array.prototype.forEach.call(heads,function(th,col){
      th.title='click to sort';
      th.addEventListener('click',function(){
        var asc=!th.classList.contains('asc');
        Array.prototype.forEach.call(heads,function(h){h.classList.remove('asc','desc');});
        th.classList.add(asc?'asc':'desc');
        var body=table.tBodies[0], rows=Array.prototype.slice.call(body.rows), k=keys(rows,col);
        var order=rows.map(function(r,i){return i;});
        order.sort(function(a,b){var x=k[a],y=k[b];
          if(x===null&&y===null) return a-b; if(x===null) return 1; if(y===null) return -1;
          if(x<y) return asc?-1:1; if(x>y) return asc?1:-1; return a-b;});
        order.forEach(function(i){body.appendChild(rows[i]);});
      });});}
  Array.prototype.forEach.call(document.querySelectorAll('td'),function(td){
    var t=td.textContent; if(t.length>PROSE&&t.indexOf(' ')>=0) td.classList.add('prose');});
  Array.prototype.forEach.call(document.getElementsByTagName('table'),sortable);
})();
"""

_TITLE = next(s.title for s in OUTLINE if s.key == "intro")
HTML_RECIPE_WIDTH = 40  # the full recipe is the cell's tooltip


def _sort_value(row: pd.Series, key: str) -> str:
    v = row.get(key)
    return "" if missing(v) else str(v)


def _flags_cell(text: str) -> str:
    """A row's flags, free to wrap between flags (never inside one), so that the compact tables fit
    the window instead of running past it (the all-columns table scrolls instead)."""
    flags = [f.strip() for f in text.split(",") if f.strip()]
    return '<td class="flags">' + ", ".join(f"<span>{html.escape(f)}</span>" for f in flags) + "</td>"


def _cell(row: pd.Series, col: Column, name: str) -> str:
    text = col.cell(row, name, HTML_RECIPE_WIDTH)
    if col.kind == NUMBER:
        attrs = f' class="num" data-v="{html.escape(_sort_value(row, data_key(col, name)))}"'
    else:
        attrs = f' data-v="{html.escape(str(row.get(name, "")))}"'
    title = col.title(row) if col.title is not None else None
    if title is not None:
        attrs += f' title="{html.escape(title)}"'
    body = col.html(row) if col.html is not None else html.escape(text)
    return f"<td{attrs}>{body}</td>"


def _img(path: Path, name: str) -> str:
    data = base64.b64encode(Path(path).read_bytes()).decode("ascii")
    return f'<img alt="{html.escape(name)}" title="{html.escape(name)}" src="data:image/png;base64,{data}">'


def _intro(doc: Document, s: Section) -> list[str]:
    return [f"<h1>{html.escape(s.title)}</h1>",
            f'<p class="note">{html.escape(protocol_line(doc.table, doc.eps, doc.sort))} Click a column header '
            "to sort.</p>"]


def _plain_table(df: pd.DataFrame, which: str, attacks, cls: str) -> list[str]:
    cols = view(which, attacks)
    def cell(r, col, name) -> str:
        text = col.cell(r, name, RECIPE_WIDTH)
        if name == "flags":
            return _flags_cell(text)
        return f'<td class="lacks">{html.escape(text)}</td>' if name == "lacks" else f"<td>{html.escape(text)}</td>"

    rows = ["<tr>" + "".join(cell(r, col, name) for col, name, _ in cols) + "</tr>" for _, r in df.iterrows()]
    return [f'<div class="wrap"><table class="{cls}"><thead><tr>',
            "".join(f"<th>{html.escape(h)}</th>" for _, _, h in cols), "</tr></thead><tbody>", *rows,
            "</tbody></table></div>"]


def _ranked(doc: Document, s: Section) -> list[str]:
    df = doc.table
    if not len(df):
        return ['<p class="note">No results at this ε yet.</p>']
    shown = df[~provisional(df)]
    if not len(shown):
        return ['<p class="note">No row is ranked yet: every row lacks AutoAttack (see Provisional below).</p>']
    return _plain_table(shown, "compact", df.attrs.get("attacks", []), "compact")


def _provisional(doc: Document, s: Section) -> list[str]:
    df = doc.table
    rows = df[provisional(df)] if len(df) else df
    if not len(rows):
        return []
    return [f"<h2>{html.escape(s.title)}</h2>", f'<p class="note">{html.escape(NOTE_PROVISIONAL.replace("`", ""))}</p>',
            *_plain_table(rows, "provisional", df.attrs.get("attacks", []), "provisional")]


def _all(doc: Document, s: Section) -> list[str]:
    df = doc.table
    if not len(df):
        return []
    full = view("full", df.attrs.get("attacks", []))
    body = []
    for _, r in df.iterrows():
        cls = "reported" if r.get("status") == "reported" else ("stale" if r.get("stale") else "")
        body.append(f'<tr class="{cls}">' + "".join(_cell(r, col, name) for col, name, _ in full) + "</tr>")
    return [f"<h2>{html.escape(s.title)}</h2>", '<div class="wrap"><table id="leaderboard"><thead><tr>',
            "".join(f"<th>{html.escape(h)}</th>" for _, _, h in full), "</tr></thead><tbody>", *body,
            "</tbody></table></div>"]


def _flags(doc: Document, s: Section) -> list[str]:
    flags = flag_lines(doc.table) if len(doc.table) else []
    if not flags:
        return []
    items = "".join(f"<li><b>{html.escape(f)}</b>: {html.escape(text)}</li>" for f, text in flags)
    return [f"<h2>{html.escape(s.title)}</h2>", '<p class="note">Hover a row\'s flags for the measured reason '
            "(<code>qrobench diagnose --model NAME</code> prints the full report).</p>", f"<ul>{items}</ul>"]


def _reported(doc: Document, s: Section) -> list[str]:
    return [f'<p class="note">{html.escape(NOTE_REPORTED)}</p>'] if (doc.table["status"] == "reported").any() else []


def _stale(doc: Document, s: Section) -> list[str]:
    return []  # the page marks each stale row with a badge instead


def _built(doc: Document, s: Section) -> list[str]:
    return [f'<p class="note">Built by qrobench {html.escape(__version__)} from {doc.n_files} result file(s).</p>']


def _summary(doc: Document, s: Section) -> list[str]:
    if doc.summary is None:
        return []
    items = "".join(f"<li>{html.escape(line.strip().lstrip('- '))}</li>" for line in doc.summary.lines())
    return [f"<h2>{html.escape(s.title)}</h2>", f"<ul>{items}</ul>"]


def _plots(doc: Document, s: Section) -> list[str]:
    if not doc.plots:
        return []
    return [f"<h2>{html.escape(s.title)}</h2>", '<div class="plots">',
            *[_img(paths[0], name) for name, paths in doc.plots.items()], "</div>"]


HTML_SECTIONS = {
    "intro": _intro, "ranked": _ranked, "provisional": _provisional, "all": _all, "flags": _flags, "reported": _reported, "stale": _stale,
    "built": _built, "summary": _summary, **{k: studies_section(studies_render.HTML) for k in studies_render.HTML},
    "plots": _plots,
}


def to_html(df: pd.DataFrame, summary: RunsSummary | None, eps: float, sort: str,
            plots: dict | None = None, n_files: int = 0, studies: Studies | None = None) -> str:
    doc = Document(df, summary, eps, sort, plots, n_files, studies)
    parts = [
        "<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{html.escape(_TITLE)}</title>", f"<style>{_CSS}</style></head><body>",
    ]
    parts += [part for s in OUTLINE for part in HTML_SECTIONS[s.key](doc, s)]
    parts += [f"<script>{_JS}</script>", "</body></html>", ""]
    return "\n".join(parts)
