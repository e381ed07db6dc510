"""The HTML leaderboard in a real browser: headless Chromium at a 1,400 px window.

The page is built from the committed result files (the real page, every threat table in it)
by the current code, a checking script is appended to a copy, and ``chromium --dump-dom``
returns what the script measured: the geometry of every table and cell, the threat sections,
the flag explanations, and each column's cells after a click on its header (ascending) and a
second click (descending). The verdicts are drawn here, in Python, from those raw readings.
Skipped where no Chromium binary is installed (Debian: ``apt-get install chromium``).
"""

from __future__ import annotations

import html
import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from qrobench.protocol import LEADERBOARD_EPS
from qrobench.reports.build import collect_leaderboard
from qrobench.reports.html import to_html
from qrobench.reports.leaderboard import DEFAULT_SORT

REPO = Path(__file__).resolve().parents[2]
RESULTS = REPO / "results"
WIDTH, HEIGHT = 1400, 1000
THREAT_SECTIONS = ("Threat models side by side", "L2 (ε = 0.5)", "Common corruptions",
                   "Bit errors in the stored weights", "The Bit-Flip Attack")
MISSING = {"", "—", "nan", "none"}


def _chromium() -> str | None:
    named = os.environ.get("QROBENCH_CHROMIUM")
    if named:
        return named
    return next((p for p in map(shutil.which, ("chromium", "chromium-browser", "google-chrome",
                                                "google-chrome-stable")) if p), None)


# Appended to a copy of the page; runs after the page's own script. It measures and clicks,
# and writes the readings as JSON into <pre id="qrobench-verdict">; it judges nothing.
_PROBE = r"""
<script>
window.addEventListener('load', function(){
  var out = {width: window.innerWidth, doc_scroll_width: document.documentElement.scrollWidth,
             outside: [], boxes: [], tables: [], sections: {}, flags: null, errors: []};
  function txt(el){ return (el.textContent || '').replace(/\s+/g, ' ').trim(); }
  function scroller(el){ for (var p = el.parentElement; p && p !== document.body; p = p.parentElement){
      var o = getComputedStyle(p).overflowX; if (o === 'auto' || o === 'scroll') return p; } return null; }
  function heading(table){ for (var el = table.closest('div.wrap') || table; el; el = el.previousElementSibling){
      if (el.tagName === 'H2' || el.tagName === 'H1') return txt(el); } return null; }
  try {
    // anything reaching past the window that is not inside a box that scrolls it into view
    var all = document.body.getElementsByTagName('*');
    for (var i = 0; i < all.length; i++){ var el = all[i], r = el.getBoundingClientRect();
      if (r.width > 0 && r.right > window.innerWidth + 0.5 && !scroller(el))
        out.outside.push(el.tagName + ' ' + txt(el).slice(0, 60) + ' right=' + Math.round(r.right)); }
    // every box that scrolls horizontally: how far it scrolls and how tall its scrollbar is
    var wraps = document.querySelectorAll('div.wrap');
    for (var w = 0; w < wraps.length; w++){ var b = wraps[w], cs = getComputedStyle(b);
      out.boxes.push({heading: heading(b.querySelector('table') || b), scroll_width: b.scrollWidth,
        client_width: b.clientWidth, right: b.getBoundingClientRect().right, overflow_x: cs.overflowX,
        scrollbar: b.offsetHeight - b.clientHeight - parseFloat(cs.borderTopWidth) - parseFloat(cs.borderBottomWidth)}); }
    var tables = document.getElementsByTagName('table');
    for (var t = 0; t < tables.length; t++){ var tb = tables[t], box = scroller(tb);
      var rows = tb.tBodies.length ? Array.prototype.slice.call(tb.tBodies[0].rows) : [];
      var heads = tb.tHead ? Array.prototype.slice.call(tb.tHead.rows[0].cells) : [];
      var clipped = [];
      Array.prototype.forEach.call(tb.querySelectorAll('th,td'), function(c){
        if (c.scrollWidth > c.clientWidth + 1) clipped.push(txt(c).slice(0, 60)); });
      var last = heads.length ? heads[heads.length - 1].getBoundingClientRect() : null;
      var info = {index: t, id: tb.id, cls: tb.className, heading: heading(tb), headers: heads.map(txt),
        n_rows: rows.length, cells_per_row: rows.map(function(r){ return r.cells.length; }),
        flags: [], clipped: clipped, in_scroller: !!box,
        last_header_right: last ? last.right : null,
        box_right: box ? box.getBoundingClientRect().right : window.innerWidth,
        fits: box ? box.scrollWidth <= box.clientWidth : true, sorted: []};
      var fcol = info.headers.indexOf('flags');
      if (fcol >= 0) rows.forEach(function(r){ info.flags.push(txt(r.cells[fcol])); });
      out.tables.push(info); }
    // the threat sections and the flag explanations, read before any click reorders a table
    Array.prototype.forEach.call(document.querySelectorAll('h2'), function(h){
      out.sections[txt(h)] = true; });
    var fh = Array.prototype.filter.call(document.querySelectorAll('h2'), function(h){ return txt(h) === 'Flags'; })[0];
    if (fh){ var ul = fh.nextElementSibling; while (ul && ul.tagName !== 'UL' && ul.tagName !== 'H2') ul = ul.nextElementSibling;
      out.flags = ul && ul.tagName === 'UL' ? Array.prototype.map.call(ul.children, function(li){
        var b = li.querySelector('b'); return {flag: b ? txt(b) : '', text: txt(li), height: li.getBoundingClientRect().height}; }) : []; }
    // click each header twice; record the column as the page then shows it
    for (var t2 = 0; t2 < tables.length; t2++){ var tb2 = tables[t2];
      if (!tb2.tHead || !tb2.tBodies.length) continue;
      var hs = tb2.tHead.rows[0].cells;
      for (var c = 0; c < hs.length; c++){ var col = {header: txt(hs[c])};
        ['asc', 'desc'].forEach(function(dir){ hs[c].click();
          col[dir] = Array.prototype.map.call(tb2.tBodies[0].rows, function(r){
            var cell = r.cells[c]; return cell ? [cell.getAttribute('data-v'), txt(cell)] : [null, '']; });
          col[dir + '_class'] = hs[c].className;
          col[dir + '_rows'] = Array.prototype.map.call(tb2.tBodies[0].rows, txt).sort(); });
        out.tables[t2].sorted.push(col); } }
  } catch (e) { out.errors.push(String(e && e.stack || e)); }
  var pre = document.createElement('pre'); pre.id = 'qrobench-verdict';
  pre.textContent = JSON.stringify(out); document.body.appendChild(pre);
});
</script>
"""


def _build_page(folder: Path) -> Path:
    """The page as 'qrobench leaderboard' writes it from the committed result folders (plots left
    out: each is an image no wider than half the page, and drawing them costs seconds)."""
    results = folder / "results"
    for sub in sorted(p for p in RESULTS.iterdir() if p.is_dir() and p.name not in ("runs", "plots")):
        shutil.copytree(sub, results / sub.name)
    lb = collect_leaderboard(results, REPO / "model_zoo")
    page = to_html(lb.table, lb.summary, LEADERBOARD_EPS, DEFAULT_SORT, {}, lb.n_files, lb.studies)
    probed = folder / "leaderboard.html"
    probed.write_text(page.replace("</body>", _PROBE + "</body>"), encoding="utf-8")
    return probed


@pytest.fixture(scope="module")
def readings(tmp_path_factory) -> dict:
    binary = _chromium()
    if binary is None:
        pytest.skip("no Chromium binary found (Debian: apt-get install chromium; or set QROBENCH_CHROMIUM)")
    folder = tmp_path_factory.mktemp("browser")
    page = _build_page(folder)
    cmd = [binary, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
           f"--user-data-dir={folder / 'profile'}", f"--window-size={WIDTH},{HEIGHT}",
           "--virtual-time-budget=10000", "--dump-dom", page.as_uri()]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=120,
                          env={**os.environ, "HOME": str(folder)})
    found = re.search(r'<pre id="qrobench-verdict">(.*?)</pre>', done.stdout, re.S)
    assert found, f"Chromium returned no verdict (exit {done.returncode}): {done.stderr[-2000:]}"
    out = json.loads(html.unescape(found.group(1)))
    assert not out["errors"], out["errors"]
    assert out["width"] == WIDTH, f"the window is {out['width']} px wide, not {WIDTH}"
    return out


def _by_heading(readings: dict, heading: str) -> list[dict]:
    return [t for t in readings["tables"] if t["heading"] == heading]


def _ranked_tables(readings: dict) -> list[dict]:
    return [t for t in readings["tables"] if t["cls"] in ("compact", "provisional")]


def test_nothing_reaches_past_a_1400_px_window(readings):
    assert readings["doc_scroll_width"] <= WIDTH, "the page scrolls sideways"
    assert readings["outside"] == [], "cut off at the window's right edge"
    for t in readings["tables"]:
        assert t["clipped"] == [], f"cells of the table under {t['heading']!r} overflow their cell"


def test_the_ranked_tables_fit_with_their_last_column_in_view(readings):
    """The compact table and the provisional one are the page's point: read whole, never scrolled."""
    tables = _ranked_tables(readings) + _by_heading(readings, THREAT_SECTIONS[0])
    assert {t["cls"] for t in tables} >= {"compact", "provisional"}
    for t in tables:
        assert t["fits"], f"the table under {t['heading']!r} needs scrolling at {WIDTH} px"
        assert t["last_header_right"] <= min(t["box_right"], WIDTH) + 0.5, \
            f"the last column ({t['headers'][-1]!r}) of the table under {t['heading']!r} is cut off"


def test_a_table_wider_than_the_window_scrolls_inside_a_visible_scrollbar(readings):
    wide = [b for b in readings["boxes"] if b["scroll_width"] > b["client_width"]]
    assert wide, "expected the 'All columns' table to be wider than the window"
    for b in wide:
        assert b["overflow_x"] in ("auto", "scroll") and b["right"] <= WIDTH + 0.5, b
        assert b["scrollbar"] >= 6, f"the table under {b['heading']!r} scrolls without a visible scrollbar"


def test_every_threat_table_renders_with_rows(readings):
    for title in THREAT_SECTIONS:
        assert title in readings["sections"], f"no section {title!r}"
        tables = _by_heading(readings, title)
        assert tables, f"no table under {title!r}"
        for t in tables:
            assert t["headers"] and t["n_rows"] > 0, f"the table under {title!r} is empty"
            assert set(t["cells_per_row"]) == {len(t["headers"])}, f"ragged rows under {title!r}"


def test_every_flag_shown_is_explained(readings):
    explained = {f["flag"]: f for f in readings["flags"] or []}
    shown = {f.strip() for t in _ranked_tables(readings) for cell in t["flags"] for f in cell.split(",")
             if f.strip()}
    assert shown, "the ranked tables show no flag; the committed results have some"
    assert shown <= set(explained), f"flags without an explanation: {sorted(shown - set(explained))}"
    for f in explained.values():
        assert f["height"] > 0 and len(f["text"]) > len(f["flag"]) + 2, f"flag {f['flag']!r} renders no text"


def _value(cell: list) -> str | None:
    v = (cell[0] if cell[0] is not None else cell[1]).strip()
    return None if v.lower() in MISSING else v


def _keys(cells: list) -> list:
    """The column's sort keys as a reader would take them: the numbers its cells open with ('≤ 35.1',
    '37.9 [34.9, 40.9]', '> 100') where every cell opens with one, else the lower-case text; a missing
    value ('—') is None, and sorts last either way."""
    values = [_value(c) for c in cells]
    numbers = [re.match(r"^[≤≥<>~]?\s*(-?\d+(?:\.\d+)?(?:e-?\d+)?)", v) if v is not None else None
               for v in values]
    numeric = all(m is not None for v, m in zip(values, numbers, strict=True) if v is not None)
    return [None if v is None else float(m.group(1)) if numeric else v.lower()
            for v, m in zip(values, numbers, strict=True)]


def _in_order(cells: list, ascending: bool) -> bool:
    keys = _keys(cells)
    present = [k for k in keys if k is not None]
    return keys[len(present):] == [None] * (len(keys) - len(present)) and \
        present == sorted(present, reverse=not ascending)


def test_clicking_a_header_sorts_its_column_both_ways(readings):
    checked = 0
    for t in readings["tables"]:
        assert len(t["sorted"]) == len(t["headers"]), f"headers of the table under {t['heading']!r} not clicked"
        for col in t["sorted"]:
            where = f"column {col['header']!r} under {t['heading']!r}"
            assert col["asc_rows"] == col["desc_rows"], f"sorting {where} lost or changed rows"
            assert "asc" in col["asc_class"].split() and "desc" in col["desc_class"].split(), where
            if len(set(_keys(col["asc"])) - {None}) < 2:
                continue  # one distinct value: every order is sorted
            assert _in_order(col["asc"], True), f"{where} not ascending after a click: {col['asc'][:6]}"
            assert _in_order(col["desc"], False), f"{where} not descending after a second click"
            checked += 1
    assert checked >= 30
