"""Leaderboard plots (matplotlib, PNG and SVG), drawn without pyplot on the Agg canvas.

Using ``Figure`` + ``FigureCanvasAgg`` directly needs no display and leaves matplotlib's
global state alone, so plotting works on a headless CI runner and inside test suites.
Only measured rows are plotted: reported numbers come from a different protocol.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, MaxNLocator

from ..files import atomic_path
from ..protocol import PRECISION_TOKENS

PRECISION_ORDER = PRECISION_TOKENS  # widest first
LOSS_ORDER = ("adversarial", "tradeoff", "natural", "other")
LOSS_MARKERS = {"adversarial": "o", "tradeoff": "s", "natural": "^", "other": "D"}
_COLORS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
           "#bcbd22", "#17becf")
PLOTS = ("robust_vs_bits", "robust_vs_size", "sparsity_by_precision", "robust_vs_eps")


def _ordered(values, order) -> list:
    values = [v for v in dict.fromkeys(values) if isinstance(v, str)]
    return [v for v in order if v in values] + sorted(v for v in values if v not in order)


def _color(i: int) -> str:
    return _COLORS[i % len(_COLORS)]


def _figure(width=7.0, height=4.6) -> Figure:
    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _empty(ax, what: str) -> None:
    ax.text(0.5, 0.5, f"no measured {what} yet", ha="center", va="center", transform=ax.transAxes,
            color="#666666")
    ax.set_xticks([])
    ax.set_yticks([])


def _measured(df: pd.DataFrame, *cols) -> pd.DataFrame:
    out = df[df["status"] == "measured"]
    for c in cols:
        out = out[pd.to_numeric(out[c], errors="coerce").notna()]
    return out


def robust_vs_bits(df: pd.DataFrame) -> Figure:
    fig = _figure()
    ax = fig.add_subplot()
    d = _measured(df, "bits", "worst_case_pct")
    if d.empty:
        _empty(ax, "results")
    else:
        groups = d.groupby(["architecture", "ensemble", "loss"], sort=True)
        for i, ((arch, ens, loss), g) in enumerate(groups):
            g = g.sort_values("bits")
            label = f"{arch}" + (f" ×{ens}" if int(ens) > 1 else "") + f" ({loss})"
            # the line joins uniform precisions; mixed precision is another method, a lone marker
            uniform, mixed = g[g["precision"] != "mixed"], g[g["precision"] == "mixed"]
            ax.plot(uniform["bits"], uniform["worst_case_pct"], marker=LOSS_MARKERS.get(loss, "o"),
                    color=_color(i), label=label)
            ax.plot(mixed["bits"], mixed["worst_case_pct"], marker="*", markersize=11, linestyle="none",
                    color=_color(i))
            for _, r in g.iterrows():
                ax.annotate(r["precision"], (r["bits"], r["worst_case_pct"]), textcoords="offset points",
                            xytext=(4, 4 if i % 2 == 0 else -11), fontsize=8)
        ax.set_xscale("log", base=2)
        ticks = [1, 2, 4, 8, 16, 32]  # mixed precision sits between ticks at its average bits
        ax.set_xticks(ticks)
        ax.set_xticklabels([f"{t:g}" for t in ticks])
        ax.set_xlabel("bits per quantized weight (log scale)")
        ax.set_ylabel("worst-case robust accuracy (%)")
        ax.set_ylim(bottom=0)
        ax.legend(fontsize=8)
        ax.grid(alpha=0.3)
    ax.set_title("Robust accuracy vs bit-width, per architecture")
    return fig


def robust_vs_size(df: pd.DataFrame) -> Figure:
    fig = _figure()
    ax = fig.add_subplot()
    d = _measured(df, "size_kb", "worst_case_pct")
    if d.empty:
        _empty(ax, "results")
    else:
        precisions = _ordered(d["precision"], PRECISION_ORDER)
        for i, p in enumerate(precisions):
            for loss in _ordered(d["loss"], LOSS_ORDER):
                g = d[(d["precision"] == p) & (d["loss"] == loss)]
                if not g.empty:
                    ax.scatter(g["size_kb"], g["worst_case_pct"], color=_color(i),
                               marker=LOSS_MARKERS.get(loss, "o"), s=40, label=f"{p}, {loss}")
        for _, r in d.iterrows():
            ax.annotate(r["model"], (r["size_kb"], r["worst_case_pct"]), textcoords="offset points",
                        xytext=(4, 3), fontsize=7)
        ax.set_xscale("log")
        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
        ax.xaxis.set_minor_formatter(FuncFormatter(lambda v, _: f"{v:g}" if str(int(v))[0] in "25" else ""))
        ax.set_xlabel("deployed size (KB, log scale)")
        ax.set_ylabel("worst-case robust accuracy (%)")
        ax.set_ylim(bottom=0)
        ax.margins(x=0.2)
        ax.legend(fontsize=8)
        ax.grid(alpha=0.3)
    ax.set_title("Robust accuracy vs deployed size")
    return fig


def sparsity_by_precision(df: pd.DataFrame) -> Figure:
    fig = _figure(9.0, 4.2)
    axes = fig.subplots(1, 2, sharey=True)
    d = _measured(df, "sparsity_pct", "channel_sparsity_pct")
    for ax, col, title in zip(axes, ("sparsity_pct", "channel_sparsity_pct"),
                              ("Sparsity", "Channel sparsity"), strict=True):
        ax.set_title(f"{title} by precision and loss")
        if d.empty:
            _empty(ax, "results")
            continue
        precisions = _ordered(d["precision"], PRECISION_ORDER)
        losses = _ordered(d["loss"], LOSS_ORDER)
        width = 0.8 / len(losses)
        for j, loss in enumerate(losses):
            xs, hs = [], []
            for i, p in enumerate(precisions):
                g = d[(d["precision"] == p) & (d["loss"] == loss)][col].astype(float)
                if not g.empty:
                    x = i - 0.4 + width * (j + 0.5)
                    xs.append(x)
                    hs.append(g.mean())
                    ax.scatter([x] * len(g), g, color="black", s=8, zorder=3)
            ax.bar(xs, hs, width=width * 0.95, color=_color(j), label=loss)
        ax.set_xticks(range(len(precisions)))
        ax.set_xticklabels(precisions)
        ax.set_xlabel("precision")
        ax.grid(axis="y", alpha=0.3)
    axes[0].set_ylabel("% of quantized weights / input-channel slices")
    if not d.empty:
        fig.legend(*axes[0].get_legend_handles_labels(), loc="outside upper center", ncols=4, fontsize=8,
                   title="training loss (bar: mean over models, dot: one model)", title_fontsize=8)
    return fig


def robust_vs_eps(curves: pd.DataFrame) -> Figure:
    fig = _figure()
    ax = fig.add_subplot()
    if curves.empty:
        _empty(ax, "ε curves (run 'qrobench run --eps 2/255,4/255,8/255,16/255')")
    else:
        for i, (model, g) in enumerate(curves.groupby("model", sort=True)):
            g = g.sort_values("eps")
            xs = [0.0, *g["eps_255"]]
            ys = [float(g["clean_pct"].iloc[0]), *g["worst_case_pct"]]
            ax.plot(xs, ys, marker="o", color=_color(i), label=model)
        ticks = sorted({0.0, *(float(e) for e in curves["eps_255"])})
        ax.set_xticks(ticks)
        ax.set_xticklabels([f"{t:g}" for t in ticks])
        ax.set_xlabel("ε (× 1/255, L∞); ε = 0 is clean accuracy")
        ax.set_ylabel("worst-case robust accuracy (%)")
        ax.set_ylim(bottom=0)
        ax.legend(fontsize=8)
        ax.grid(alpha=0.3)
    ax.set_title("Robust accuracy vs ε")
    return fig


def _save(fig: Figure, path: Path, fmt: str) -> Path:
    meta = {"Date": None} if fmt == "svg" else {"Software": None}
    # SVG element ids are random unless salted: without this every rebuild rewrote the SVGs.
    with matplotlib.rc_context({"svg.hashsalt": "qrobench"}), atomic_path(path) as tmp:
        fig.savefig(tmp, format=fmt, dpi=110, metadata=meta)
    return path


def write_plots(table: pd.DataFrame, curves: pd.DataFrame, out_dir: str | Path,
                models: pd.DataFrame | None = None) -> dict[str, list[Path]]:
    """Draw every plot as PNG and SVG into ``out_dir``; returns {plot name: [png, svg]}.

    ``table``: the leaderboard rows at its ε; ``curves``: :func:`leaderboard.eps_curves`;
    ``models``: one row per model at any ε, for the sparsity plot (default ``table``)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    figs = {"robust_vs_bits": robust_vs_bits(table), "robust_vs_size": robust_vs_size(table),
            "sparsity_by_precision": sparsity_by_precision(table if models is None else models),
            "robust_vs_eps": robust_vs_eps(curves)}
    written = {}
    for name, fig in figs.items():
        written[name] = [_save(fig, out / f"{name}.{fmt}", fmt) for fmt in ("png", "svg")]
    return written


METHOD_STYLE = {"uniform": ("o", "-"), "lgmp": ("*", "--")}


def sweep_curves(source: str, points: pd.DataFrame) -> Figure:
    """Clean and worst-case accuracy against average bits for one swept float model."""
    fig = _figure(9.0, 4.0)
    axes = fig.subplots(1, 2, sharex=True)
    base = points[points["method"] == "float"]
    for ax, col, what in ((axes[0], "clean_pct", "clean accuracy"), (axes[1], "worst_case_pct",
                                                                    "worst-case robust accuracy")):
        for i, (method, g) in enumerate(points[points["method"] != "float"].groupby("method", sort=True)):
            g = g.sort_values("avg_bits")
            marker, style = METHOD_STYLE.get(method, ("D", ":"))
            ax.plot(g["avg_bits"], g[col], marker=marker, linestyle=style, color=_color(i), label=method)
            if col == "worst_case_pct":
                ax.fill_between(g["avg_bits"], g["worst_lo"], g["worst_hi"], color=_color(i), alpha=0.12)
        if len(base):
            ax.axhline(float(base[col].iloc[0]), color="#444444", linestyle=":", label="float (unquantized)")
        ax.set_xlabel("average bits per quantized weight")
        ax.set_ylabel(f"{what} (%)")
        ax.set_ylim(bottom=0)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    n = int(points["n"].iloc[0]) if len(points) else 0
    fig.suptitle(f"{source}: post-training quantization sweep (first {n} test points)")
    return fig


def layer_sparsity(weights: dict[str, dict], groups: list[list[str]]) -> Figure:
    """Per quantized conv, in network order, one panel per architecture: sparsity (solid) and the
    zero fraction of the emptiest input channel (dotted; 100 % would be a zero channel)."""
    fig = _figure(9.0, 3.6 * len(groups))
    axes = fig.subplots(len(groups), 1, squeeze=False)[:, 0]
    for ax, models in zip(axes, groups, strict=True):
        for i, m in enumerate(models):
            layers = weights[m]["layers"]
            x = range(len(layers))
            ax.plot(x, [100 * ly["sparsity"] for ly in layers], marker="o", markersize=3, color=_color(i),
                    label=f"{m}: sparsity")
            ax.plot(x, [100 * ly["max_channel_zero_frac"] for ly in layers], linestyle=":", color=_color(i),
                    label=f"{m}: emptiest input channel")
        ax.axhline(100, color="#999999", linewidth=0.8)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlabel("quantized conv, in network order (stem first)")
        ax.set_ylabel("% zeros")
        ax.set_ylim(0, 105)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, ncol=2)
    fig.suptitle("Where the zeros sit: trade-off models and their controls")
    return fig


THREAT_PANELS = (("linf_pct", "L∞ ε = 8/255: AutoAttack (hollow: ≤, no AA)", "linf_aa"),
                 ("l2_pct", "L2 ε = 0.5: AutoAttack (hollow: ≤, no AA)", "l2_aa"),
                 ("corruptions_pct", "common corruptions: mean accuracy", None),
                 ("ber0.1_pct", "random bit errors, p = 0.1 %: accuracy", None),
                 ("bfa_flips", "Bit-Flip Attack: flips to ≤ 11 % (▲: > cap)", None))


def threats_vs_bits(t: pd.DataFrame) -> Figure:
    """Each threat model's headline number against bits per weight, one panel per threat, the
    zoo's families (architecture × float source) as lines joining their uniform precisions."""
    fig = _figure(12.0, 7.0)
    axes = fig.subplots(2, 3).ravel()
    d = t[pd.to_numeric(t["bits"], errors="coerce").notna()].copy()
    color = {f: _color(i) for i, f in enumerate(sorted(d["family"].unique()))}  # one colour per family everywhere
    for ax, (col, title, exact_col) in zip(axes, THREAT_PANELS, strict=False):
        ax.set_title(title, fontsize=9)
        y = d.get(col)
        if col == "bfa_flips" and "bfa_cap" in d:  # '> cap' drawn at cap + 1, marked
            capped = d["bfa_cap"].notna() & d.get("bfa_flips", pd.Series(index=d.index, dtype=float)).isna()
            y = pd.to_numeric(d.get("bfa_flips"), errors="coerce").where(~capped, d["bfa_cap"] + 1)
        if y is None or pd.to_numeric(y, errors="coerce").notna().sum() == 0:
            _empty(ax, "results")
            continue
        d["_y"] = pd.to_numeric(y, errors="coerce")
        for fam, g in d[d["_y"].notna()].groupby("family", sort=True):
            g = g.sort_values("bits")
            line = g[g["on_line"].astype(bool)]
            ax.plot(line["bits"], line["_y"], color=color[fam], alpha=0.5, label=f"from {fam}" if len(g) > 1 else fam)
            for _, r in g.iterrows():
                exact = True if exact_col is None else bool(r.get(exact_col)) and not pd.isna(r.get(exact_col))
                capped_pt = col == "bfa_flips" and pd.isna(r.get("bfa_flips"))
                marker = "^" if capped_pt else "o" if r["on_line"] else "*" if r["precision"] == "mixed" else "D"
                ax.plot([r["bits"]], [r["_y"]], marker=marker, color=color[fam], linestyle="none",
                        markerfacecolor=color[fam] if exact else "none")
        ax.set_xscale("log", base=2)
        ax.set_xticks([1, 2, 4, 8, 32])
        ax.set_xticklabels(["1", "2", "4", "8", "32"])
        ax.set_xlabel("bits per stored weight (log scale)", fontsize=8)
        ax.grid(alpha=0.3)
        if col == "bfa_flips":
            ax.set_yscale("log")
        else:
            ax.set_ylim(bottom=0)
        ax.legend(fontsize=7)
    axes[-1].axis("off")
    axes[-1].text(0, 0.9, "line: qrobench's own uniform-precision models from one float source\n"
                  "◆: toolkit, trade-off or natural models; ★: mixed precision\n"
                  "float models meet the weight threats in int8 post-training codes", fontsize=8, va="top")
    fig.suptitle("Every threat model against bit width (the zoo; one file per model and threat)")
    return fig


def write_study_plots(st, out_dir: str | Path) -> dict[str, list[Path]]:
    """The sweep curves (one plot per swept model) and the per-layer sparsity plot."""
    from .studies.data import layer_groups

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    figs = {}
    if len(st.table):
        for source, g in st.table.groupby("source", sort=True):
            figs[f"sweep_{source}"] = sweep_curves(source, g)
    if len(getattr(st, "threats", ())):
        figs["threats_vs_bits"] = threats_vs_bits(st.threats)
    groups = layer_groups(st.weights)
    if groups:
        figs["layer_sparsity"] = layer_sparsity(st.weights, groups)
    return {name: [_save(fig, out / f"{name}.{fmt}", fmt) for fmt in ("png", "svg")] for name, fig in figs.items()}
