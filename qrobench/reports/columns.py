"""The leaderboard's columns, declared once: their value for a measured and for a published row,
their header and cell text, and which outputs carry them.

The Markdown, HTML, CSV and JSON back-ends and ``--sort`` / ``--filter`` all iterate this spec,
so a new column is one :class:`Column` entry in ``COLUMNS`` (and its name in a table of ``VIEWS``
if people should see it) and no back-end can forget it.

Data keys end in ``_pct`` for percentages (the result files hold fractions); a view names a
column without that suffix, as ``--sort`` does. A family column (``over``) expands to one key
per attack, or per accuracy (clean, the attacks, worst case), in battery order.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pandas as pd

from ..protocol import AUTOATTACK as AUTOATTACK_STANDARD
from ..protocol import AUTOATTACK_RAND, battery_for, precision_bits

TEXT, NUMBER, INTERNAL = "text", "number", "internal"  # INTERNAL: for tools, not offered to --sort
ATTACKS, ACCURACIES = "attacks", "accuracies"
RECIPE_WIDTH = 60
AUTOATTACK = (AUTOATTACK_STANDARD, AUTOATTACK_RAND)  # the deterministic and the randomised model's


def missing(v) -> bool:
    return v is None or v is pd.NA or (isinstance(v, float) and math.isnan(v))


def pct(x) -> float:
    """Fraction → percent; NaN where a file has no number, so the frame stays numeric."""
    return 100.0 * float(x) if isinstance(x, (int, float)) else math.nan


def num(x) -> float:
    return float(x) if isinstance(x, (int, float)) else math.nan


# -- cell text (Markdown and HTML) -----------------------------------------------------------

def pct_text(v, std, repeats, lo=None, hi=None) -> str:
    if missing(v):
        return "—"
    s = f"{v:.2f}"
    if not missing(std) and repeats and repeats > 1:
        s += f" ± {std:.2f}"
    if not missing(lo) and not missing(hi):
        s += f" [{lo:.1f}, {hi:.1f}]"
    return s


def short(text: str, width: int = RECIPE_WIDTH) -> str:
    text = str(text or "")
    return text if len(text) <= width else text[: width - 1] + "…"


def _accuracy_cell(row, name, width) -> str:
    return pct_text(row.get(f"{name}_pct"), row.get(f"{name}_std_pct"), row.get("repeats", 1),
                    row.get(f"{name}_lo_pct"), row.get(f"{name}_hi_pct"))


def _autoattack_cell(row, name, width) -> str:
    """Whichever AutoAttack the model's kind calls for, in one column for every row."""
    name = next((a for a in AUTOATTACK if not missing(row.get(f"{a}_pct"))), AUTOATTACK[0])
    return "—" if missing(row.get(f"{name}_pct")) else _accuracy_cell(row, name, width)


def _percent_cell(row, name, width) -> str:
    return pct_text(row.get(f"{name}_pct"), None, 1)


def _cell(fmt: Callable[[Any], str]) -> Callable:
    """A cell of the row's own value, '—' where it has none."""
    return lambda row, name, width: "—" if missing(row.get(name)) else fmt(row.get(name))


def _model_text(row, name, width) -> str:
    v = row.get(name)
    if missing(v):
        return "—"
    return f"{v} (reported)" if row.get("status") == "reported" else str(v)


def _recipe_text(row, name, width) -> str:
    v = row.get(name)
    if missing(v):
        return "—"
    return short(v, width) if width else str(v)


_text = _cell(str)
_int = _cell(lambda v: str(int(v)))


# -- the spec --------------------------------------------------------------------------------

@dataclass(frozen=True)
class Column:
    """One leaderboard column, everything every back-end needs to know about it.

    ``measured(m)`` / ``reported(rep)``: its value in a measured row (``m``: :class:`Measured`)
    and a published one; for a family, a dict member → value (a pair for two keys); None: set
    later (rank, group) or absent. ``cell(row, name, width)``: its text in the Markdown and HTML
    tables. ``html(row)``: raw HTML instead of the escaped text; ``title(row)``: an HTML tooltip.
    """

    key: str | tuple[str, ...]  # data key, or for a family a template (or two) with "{}"
    header: str = ""  # Markdown/HTML header; "{}" is the member for a family
    kind: str = NUMBER
    measured: Callable | None = None
    reported: Callable | None = None
    cell: Callable = _text
    html: Callable | None = None
    title: Callable | None = None
    over: str | None = None  # ATTACKS or ACCURACIES: a family
    csv: bool = True  # False: JSON only
    stored: bool = True  # False: derived for a view, in no data output
    ascending: bool | None = None  # --sort's default direction (default: text ascends)

    @property
    def name(self) -> str:
        """What views, --sort and --filter call it."""
        key = self.key if isinstance(self.key, str) else self.key[0]
        return key[:-4] if key.endswith("_pct") else key

    def keys(self, attacks) -> list[str]:
        """Its data keys for a table with these attack columns."""
        templates = (self.key,) if isinstance(self.key, str) else self.key
        if self.over is None:
            return list(templates)
        return [t.format(m) for m in members(self.over, attacks) for t in templates]

    @property
    def sorts_ascending(self) -> bool:
        return self.kind == TEXT if self.ascending is None else self.ascending


def members(over: str, attacks) -> list[str]:
    return list(attacks) if over == ATTACKS else ["clean", *attacks, "worst_case"]


# -- the ranking rule ------------------------------------------------------------------------

def autoattack_for(stochastic: bool) -> str:
    """The AutoAttack of a model's standard battery: ``aa``, or ``aa-rand`` for a randomised model."""
    return AUTOATTACK_RAND if stochastic else AUTOATTACK_STANDARD


def lacking(result) -> list[str]:
    """The attacks of the model's standard battery that ``result`` did not measure, in battery order."""
    battery = battery_for(bool(result.stochastic), threat_model=getattr(result, "threat_model", None))
    return [a for a in battery if a not in result.robust_acc]


def is_ranked(result) -> bool:
    """A measured row is ranked only with its battery's AutoAttack; without it the worst case is an
    upper bound that AutoAttack may lower, so the row is listed as provisional (as RobustBench
    lists only AutoAttack-evaluated rows)."""
    return autoattack_for(bool(result.stochastic)) in result.robust_acc


@dataclass
class Measured:
    """What a measured row's values are computed from: the file, and the verdicts about it."""

    r: Any  # collect.ResultFile
    card: Any
    stale: bool
    flags: list[str]
    diagnosis: str
    loss: str
    intervals: dict  # stats.result_intervals of the result
    root: Any = None

    @property
    def d(self):
        return self.r.result

    @property
    def ranked(self) -> bool:
        return is_ranked(self.d)

    @property
    def lacks(self) -> str:
        return ", ".join(lacking(self.d))


def _train_hours(card) -> float:
    """Training wall time from the card (the budget behind the numbers), in hours."""
    t = (getattr(card, "training", None) or {}).get("train_time_s")
    return float(t) / 3600 if isinstance(t, (int, float)) else math.nan


def _rep_size(rep) -> float:
    # a published float model's size is its architecture's float32 size, stored beside the
    # typed numbers (and checked against qrobench's own count by a test)
    fp = rep["precision"] == "fp" and isinstance(rep.get("size_bytes"), int)
    return rep["size_bytes"] / 1024 if fp else math.nan


def _rep_compression(rep) -> float:
    return 1.0 if rep["precision"] == "fp" and isinstance(rep.get("size_bytes"), int) else math.nan


def _file(m: Measured) -> str:
    return str(m.r.path.relative_to(m.root)) if m.root is not None else str(m.r.path)


def _own(d, values: dict) -> dict:
    """``values`` without the attacks run with --cascade-from: their outcomes count earlier attacks'
    breaks too, so their own accuracy is unknown and the cell stays n/a (never approximated)."""
    return {k: v for k, v in values.items() if k not in (getattr(d, "cascade_from", None) or {})}


def _m_worst(m: Measured, std: bool = False) -> float:
    d = m.d
    return (pct(d.std.worst_case_acc) if std else pct(d.worst_case_acc)) if d.robust_acc else math.nan


def _model_html(row) -> str:
    import html

    body = html.escape(str(row["model"]))
    if row.get("status") == "reported":
        body += '<span class="badge">reported</span>'
    if row.get("stale"):
        body += '<span class="badge stale">stale</span>'
    return body


def _nan(_source) -> float:
    """A value this kind of row cannot have (a published row has no worst case or sparsity)."""
    return math.nan


COLUMNS: tuple[Column, ...] = (
    Column("rank", "rank", cell=_int),  # sort_table numbers the measured rows
    Column("group", "group", cell=_int),  # leaderboard._add_groups: the significance groups
    Column("model", "model", TEXT, lambda m: m.r.model, lambda rep: rep["model"], _model_text, html=_model_html),
    Column("status", "", TEXT, lambda m: "measured", lambda rep: "reported"),
    Column("architecture", "architecture", TEXT, lambda m: m.d.architecture, lambda rep: rep["architecture"]),
    Column("ensemble", "ensemble", NUMBER, lambda m: m.d.ensemble, lambda rep: rep["ensemble"], _int),
    Column("precision", "precision", TEXT, lambda m: m.d.precision, lambda rep: rep["precision"]),
    Column("runtime", "runtime", TEXT, lambda m: _runtime(m.d), lambda rep: ""),
    Column("bits", "bits", NUMBER, lambda m: num(m.d.bits),
           lambda rep: precision_bits(rep["precision"]) or math.nan,
           _cell(lambda v: f"{v:g}" if float(v).is_integer() else f"{v:.2f}"), ascending=True),
    Column("recipe", "recipe", TEXT, lambda m: m.d.recipe or "", lambda rep: rep.get("recipe", ""), _recipe_text,
           title=lambda row: str(row.get("recipe", ""))),
    Column("train_h", "train h", NUMBER, lambda m: _train_hours(m.card), _nan, _cell(lambda v: f"{v:.2f}")),
    Column("loss", "", TEXT, lambda m: m.loss, lambda rep: rep.get("loss", "adversarial")),
    Column("clean_pct", "clean %", NUMBER, lambda m: pct(m.d.clean_acc), lambda rep: pct(rep["clean_acc"]),
           _accuracy_cell),
    Column("{}_pct", "{} %", NUMBER, lambda m: {a: pct(acc) for a, acc in _own(m.d, m.d.robust_acc).items()},
           lambda rep: {a: pct(acc) for a, acc in rep["robust_acc"].items()}, _accuracy_cell, over=ATTACKS),
    Column("autoattack", "AutoAttack %", NUMBER, cell=_autoattack_cell, stored=False),
    Column("worst_case_pct", "worst case %", NUMBER, _m_worst, _nan, _accuracy_cell),
    Column("sparsity_pct", "sparsity %", NUMBER, lambda m: pct(m.d.sparsity), _nan, _percent_cell),
    Column("channel_sparsity_pct", "channel sparsity %", NUMBER, lambda m: pct(m.d.channel_sparsity),
           lambda rep: pct(rep.get("channel_sparsity")), _percent_cell),
    Column("size_kb", "size KB", NUMBER, lambda m: num(m.d.size_bytes) / 1024, _rep_size,
           _cell(lambda v: f"{v:.1f}"), ascending=True),
    Column("compression", "compression ×", NUMBER, lambda m: num(m.d.compression), _rep_compression,
           _cell(lambda v: f"{v:.1f}×")),
    Column("n", "n", NUMBER, lambda m: int(m.d.n), lambda rep: rep["n"] if isinstance(rep.get("n"), int) else pd.NA,
           _int),
    Column("eps", "", NUMBER, lambda m: float(m.d.eps),
           lambda rep: float(rep["eps"]) if rep.get("eps") is not None else math.nan),
    Column("repeats", "", NUMBER, lambda m: int(m.d.repeats), lambda rep: 1),
    Column("flags", "flags", TEXT, lambda m: ", ".join(m.flags),
           lambda rep: ", ".join(["reported", *rep.get("flags", [])]),
           title=lambda row: str(row["diagnosis"]) if row.get("diagnosis") else None),
    # is_ranked: with the battery's AutoAttack (else provisional); published rows are never ranked
    Column("ranked", "ranked", TEXT, lambda m: m.ranked, lambda rep: False),
    # what a row lacks of its standard battery (a provisional row: its AutoAttack among them)
    Column("lacks", "lacks", TEXT, lambda m: m.lacks, lambda rep: ""),
    Column("version", "qrobench", TEXT, lambda m: m.d.qrobench_version, lambda rep: ""),
    Column("source", "source", TEXT, lambda m: "measured", lambda rep: f"reported: {rep['source']}"),
    Column("stale", "", INTERNAL, lambda m: m.stale, lambda rep: False, csv=False),
    Column("clean_std_pct", "", NUMBER, lambda m: pct(m.d.std.clean_acc), _nan),
    Column("{}_std_pct", "", NUMBER, lambda m: {a: pct(m.d.std.robust_acc.get(a)) for a in _own(m.d, m.d.robust_acc)},
           lambda rep: {a: math.nan for a in rep["robust_acc"]}, over=ATTACKS),
    Column("worst_case_std_pct", "", NUMBER, lambda m: _m_worst(m, std=True), _nan),
    Column(("{}_lo_pct", "{}_hi_pct"), "", NUMBER,
           lambda m: {k: (pct(lo), pct(hi)) for k, (lo, hi) in _own(m.d, m.intervals).items()}, lambda rep: {},
           over=ACCURACIES),
    Column("diagnosis", "", TEXT, lambda m: m.diagnosis, lambda rep: ""),
    Column("card_sha256", "", INTERNAL, lambda m: m.d.card_sha256 or "", lambda rep: ""),
    Column("file", "", INTERNAL, _file, lambda rep: str(rep.get("path", ""))),
)

def _runtime(d) -> str:
    """How the row's model ran: torch, or a toolkit's runtime (torch-int8, onnxruntime) attacked
    through its twin."""
    e = (getattr(d, "deployment", None) or {}).get("execution") or {}
    name = e.get("runtime", "torch")
    return f"{name} (materialised)" if e.get("materialised") else name


# The human tables, by column name; "{attacks}" stands for the attack columns. "compact" is the
# ranked table read at a glance, "provisional" the unranked rows below it (what they lack instead of
# rank, group and an AutoAttack they do not have), "full" the table under "All columns".
VIEWS = {
    "compact": ("rank", "group", "model", "bits", "size_kb", "clean", "autoattack", "worst_case", "sparsity",
                "channel_sparsity", "flags"),
    "provisional": ("model", "bits", "size_kb", "clean", "worst_case", "sparsity", "channel_sparsity", "lacks",
                    "flags"),
    "full": ("rank", "group", "model", "source", "architecture", "ensemble", "precision", "runtime", "bits", "recipe",
             "train_h", "clean", "{attacks}", "worst_case", "sparsity", "channel_sparsity", "size_kb", "compression",
             "n", "flags", "version"),
}

# Percent columns that are not attacks: what is left of the *_pct keys is the attack list.
NOT_ATTACKS = frozenset(c.name for c in COLUMNS if c.over is None and c.stored and str(c.key).endswith("_pct"))
TEXT_KEYS = frozenset(c.name for c in COLUMNS if c.kind == TEXT)
ASCENDING_BY_DEFAULT = frozenset(c.name for c in COLUMNS if c.sorts_ascending)
INTERNAL_KEYS = frozenset(c.name for c in COLUMNS if c.kind == INTERNAL)


def data_keys(attacks, output: str = "json") -> list[str]:
    """The data columns in order: the table's columns (JSON rows) or the CSV's."""
    return [k for c in COLUMNS if c.stored and (output != "csv" or c.csv) for k in c.keys(attacks)]


def make_row(source, kind: str) -> dict[str, Any]:
    """A table row (``kind``: "measured", ``source`` a :class:`Measured`; or "reported", ``source``
    the published row): every stored column's entries; rank and group are set later."""
    out: dict[str, Any] = {}
    for col in COLUMNS:
        if col.stored:
            out.update(row_values(col, source, kind))
    return out


def row_values(col: Column, source, kind: str) -> dict[str, Any]:
    """One column's entries of one row (``kind``: "measured" or "reported"); {} where it has none."""
    fn = col.measured if kind == "measured" else col.reported
    if fn is None:
        return {}
    v = fn(source)
    if col.over is None:
        return {col.key: v}
    templates = (col.key,) if isinstance(col.key, str) else col.key
    out = {}
    for member, value in v.items():
        values = value if len(templates) > 1 else (value,)
        out.update({t.format(member): x for t, x in zip(templates, values, strict=True)})
    return out


def view(which: str, attacks) -> list[tuple[Column, str, str]]:
    """(column, name, header) of a human table of ``VIEWS``, the attack family expanded."""
    out = []
    for n in VIEWS[which]:
        if n == "{attacks}":
            family = next(c for c in COLUMNS if c.over == ATTACKS and c.header)
            out += [(family, a, family.header.format(a)) for a in attacks]
        else:
            col = next(c for c in COLUMNS if c.name == n)
            out.append((col, n, col.header))
    return out


def data_key(col: Column, name: str) -> str:
    """The data key behind a view's cell: what the HTML page sorts it by."""
    return f"{name}_pct" if (col.over is not None or str(col.key).endswith("_pct")) else name
