"""The leaderboard as one self-contained HTML page: inline CSS and JS, plots embedded as data URIs.

Nothing is fetched when the page opens (no CDN, no fonts), so it works offline, from a CI
artifact or an e-mail attachment; clicking a column header sorts the table.
"""

from __future__ import annotations

import base64
import html
import math
from pathlib import Path

import pandas as pd

from .._version import __version__
from .render import (
    NOTE_REPORTED,
    compact_columns,
    display_cell,
    display_columns,
    flag_lines,
    protocol_line,
)
from .summary import RunsSummary

_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:24px;color:#1b1f23}
h1{font-size:1.5em;margin-bottom:4px} h2{font-size:1.15em;margin-top:28px}
p.note{color:#444;max-width:1100px;font-size:.92em}
table{border-collapse:collapse;font-size:.85em}
th,td{border:1px solid #d0d7de;padding:4px 7px;white-space:nowrap}
th{background:#f3f5f7;cursor:pointer;user-select:none;position:sticky;top:0}
th:hover{background:#e6eaef} th.asc::after{content:" \\25B2"} th.desc::after{content:" \\25BC"}
td.num{text-align:right;font-variant-numeric:tabular-nums}
tr:nth-child(even) td{background:#fafbfc}
tr.reported td{color:#555;font-style:italic;background:#fff8e6}
tr.stale td{background:#fdecec}
.badge{display:inline-block;font-size:.75em;font-style:normal;padding:0 5px;border-radius:8px;
margin-left:5px;background:#f0b429;color:#222}
.badge.stale{background:#e5534b;color:#fff}
.wrap{overflow-x:auto} .plots img{max-width:48%;margin:6px;border:1px solid #eee}
ul{font-size:.92em}
"""

_JS = """
(function(){
  var table=document.getElementById('leaderboard'); if(!table) return;
  var heads=table.tHead.rows[0].cells;
  function key(td){var v=td.getAttribute('data-v');
    if(v===null||v==='') return null; var f=parseFloat(v);
    return (td.classList.contains('num')&&!isNaN(f))?f:v.toLowerCase();}
  for(var i=0;i<heads.length;i++){(function(col){
    heads[col].addEventListener('click',function(){
      var asc=!heads[col].classList.contains('asc');
      for(var j=0;j<heads.length;j++){heads[j].classList.remove('asc','desc');}
      heads[col].classList.add(asc?'asc':'desc');
      var body=table.tBodies[0], rows=Array.prototype.slice.call(body.rows);
      rows.sort(function(a,b){var x=key(a.cells[col]),y=key(b.cells[col]);
        if(x===null&&y===null) return 0; if(x===null) return 1; if(y===null) return -1;
        if(x<y) return asc?-1:1; if(x>y) return asc?1:-1; return 0;});
      rows.forEach(function(r){body.appendChild(r);});
    });})(i);}
})();
"""

NUMERIC_KEYS = {"rank", "group", "ensemble", "bits", "train_h", "size_kb", "compression", "n"}
HTML_RECIPE_WIDTH = 40  # the full recipe is the cell's tooltip


def _sort_value(row: pd.Series, key: str) -> str:
    col = f"{key}_pct" if f"{key}_pct" in row.index else key
    v = row.get(col)
    if v is None or v is pd.NA or (isinstance(v, float) and math.isnan(v)):
        return ""
    return str(v)


def _cell(row: pd.Series, key: str) -> str:
    text = display_cell(row, key, width=HTML_RECIPE_WIDTH)
    numeric = key in NUMERIC_KEYS or f"{key}_pct" in row.index
    attrs = f' class="num" data-v="{html.escape(_sort_value(row, key))}"' if numeric else \
        f' data-v="{html.escape(str(row.get(key, "")))}"'
    if key == "recipe":
        attrs += f' title="{html.escape(str(row.get("recipe", "")))}"'
    if key == "flags" and row.get("diagnosis"):
        attrs += f' title="{html.escape(str(row["diagnosis"]))}"'
    body = html.escape(text)
    if key == "model":
        body = html.escape(str(row["model"]))
        if row.get("status") == "reported":
            body += '<span class="badge">reported</span>'
        if row.get("stale"):
            body += '<span class="badge stale">stale</span>'
    return f"<td{attrs}>{body}</td>"


def _img(path: Path, name: str) -> str:
    data = base64.b64encode(Path(path).read_bytes()).decode("ascii")
    return f'<img alt="{html.escape(name)}" title="{html.escape(name)}" src="data:image/png;base64,{data}">'


def to_html(df: pd.DataFrame, summary: RunsSummary | None, eps: float, sort: str,
            plots: dict | None = None, n_files: int = 0, studies: str = "") -> str:
    cols = display_columns(df)
    head = "".join(f"<th>{html.escape(h)}</th>" for _, h in cols)
    body = []
    for _, r in df.iterrows():
        cls = "reported" if r.get("status") == "reported" else ("stale" if r.get("stale") else "")
        body.append(f'<tr class="{cls}">' + "".join(_cell(r, k) for k, _ in cols) + "</tr>")
    parts = [
        "<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        "<title>qrobench leaderboard</title>", f"<style>{_CSS}</style></head><body>",
        "<h1>qrobench leaderboard</h1>",
        f'<p class="note">{html.escape(protocol_line(df, eps, sort))} Click a column header to sort.</p>',
    ]
    if body:
        compact = compact_columns(df)
        rows = ["<tr>" + "".join(f"<td>{html.escape(display_cell(r, k))}</td>" for k, _ in compact) + "</tr>"
                for _, r in df.iterrows()]
        parts += ['<div class="wrap"><table class="compact"><thead><tr>',
                  "".join(f"<th>{html.escape(h)}</th>" for _, h in compact), "</tr></thead><tbody>", *rows,
                  "</tbody></table></div>", "<h2>All columns</h2>",
                  '<div class="wrap"><table id="leaderboard"><thead><tr>', head, "</tr></thead><tbody>",
                  *body, "</tbody></table></div>"]
    else:
        parts.append('<p class="note">No results at this ε yet.</p>')
    flags = flag_lines(df) if len(df) else []
    if flags:
        items = "".join(f"<li><b>{html.escape(f)}</b>: {html.escape(text)}</li>" for f, text in flags)
        parts += ["<h2>Flags</h2>", '<p class="note">Hover a row\'s flags for the measured reason '
                  "(<code>qrobench diagnose --model NAME</code> prints the full report).</p>", f"<ul>{items}</ul>"]
    if (df["status"] == "reported").any():
        parts.append(f'<p class="note">{html.escape(NOTE_REPORTED)}</p>')
    parts.append(f'<p class="note">Built by qrobench {html.escape(__version__)} from {n_files} '
                 "result file(s).</p>")
    if summary is not None:
        items = "".join(f"<li>{html.escape(line.strip().lstrip('- '))}</li>" for line in summary.lines())
        parts += ["<h2>Runs summary</h2>", f"<ul>{items}</ul>"]
    if studies:
        parts.append(studies)
    if plots:
        parts += ["<h2>Plots</h2>", '<div class="plots">',
                  *[_img(paths[0], name) for name, paths in plots.items()], "</div>"]
    parts += [f"<script>{_JS}</script>", "</body></html>", ""]
    return "\n".join(parts)
