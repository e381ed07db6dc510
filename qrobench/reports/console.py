"""Console tables (tabulate) for one evaluation and for the zoo listing."""

from __future__ import annotations

from tabulate import tabulate

from ..engine.hardware import recorded_cpus
from ..engine.results import Result
from .stats import result_intervals


def _pct(mean: float, std: float | None, show_std: bool) -> str:
    s = f"{100 * mean:.2f}"
    return f"{s} ± {100 * std:.2f}" if show_std and std is not None else s


def _seeds(result: Result) -> str:
    seeds = result.seeds
    if seeds and seeds != list(range(seeds[0], seeds[0] + len(seeds))):  # merged from scattered seeds
        return f"seeds={','.join(map(str, seeds))}"
    return f"seed={result.seed}, repeats={result.repeats}"


def _seconds(t: float | None) -> str:
    return f"{t:.1f}" if t else ""  # records written before weight threats timed their columns hold 0


def _one_cpu(c: dict) -> str:
    return f"{c['name']}, {c.get('capability', '?')}, int8 dot product {c.get('int8_dot', '?')}"


def _cpu(result: Result) -> str:
    cpus = recorded_cpus(result)
    named = [c for c in cpus if c and "name" in c]
    if len(cpus) == 1:
        return f": {_one_cpu(named[0])}" if named else ""
    parts = [_one_cpu(c) for c in named] + (["pieces that did not record theirs"] if len(named) < len(cpus) else [])
    return f": merged from pieces on several CPUs ({'; '.join(parts)})"


def format_result_table(result: Result, fmt: str = "github") -> str:
    show_std = result.repeats > 1
    std = result.std
    iv = {k: f"[{100 * lo:.1f}, {100 * hi:.1f}]" for k, (lo, hi) in result_intervals(result).items()}
    rows = [["clean", _pct(result.clean_acc, std.clean_acc, show_std), iv["clean"], _seconds(result.clean_time_s)]]
    for a, acc in result.robust_acc.items():
        over = (result.cascade_from or {}).get(a)
        label = f"{a}, cumulative over {', '.join(over)}" if over else a  # --cascade-from: not its own accuracy
        rows.append([label, _pct(acc, std.robust_acc.get(a), show_std), iv[a], _seconds(result.wall_time_s.get(a))])
    if result.robust_acc:
        rows.append(["worst case", _pct(result.worst_case_acc, std.worst_case_acc, show_std), iv["worst_case"], ""])
    head = (f"{result.model}  ({result.precision}, n={result.n}, eps={result.eps:.5f}, "
            f"{_seeds(result)}, device={result.device}{_cpu(result)})\n"
            f"data: {result.data_source}\n"
            f"sparsity {100 * result.sparsity:.2f} %, channel sparsity "
            f"{100 * result.channel_sparsity:.2f} %, size {result.size_bytes / 1024:.1f} KB "
            f"({result.compression:.1f}x smaller than fp32)")
    flags = f"\nflags: {', '.join(result.flags)}" if result.flags else ""
    table = tabulate(rows, headers=["attack", "accuracy %", "95 % interval", "time s"], tablefmt=fmt,
                     disable_numparse=True)
    return f"{head}\n{table}{flags}"


def recipe_summary(card) -> str:
    """One line for a listing: recipe name, epochs, loss and starting point (the card keeps the rest)."""
    t = card.training or {}
    rec = t.get("recipe")
    if not isinstance(rec, dict):  # a post-training step or an outside submission
        cmd = t.get("command", "")
        if cmd.startswith("qrobench quantize"):
            return f"post-training mixed precision of {t.get('init_from', '?')}"
        return card.recipe if len(card.recipe) <= 60 else card.recipe[:57] + "..."
    parts = [f"{rec.get('name', '?')}, {rec.get('epochs', '?')} ep"]
    if t.get("loss") and t["loss"] != "CE(adv)":
        parts.append(t["loss"])
    if t.get("init_from"):
        parts.append(f"from {t['init_from']}")
    return ", ".join(parts)


def format_zoo_table(cards, stats: dict | None = None, fmt: str = "github") -> str:
    rows = []
    for c in cards:
        st = (stats or {}).get(c.name)
        rows.append([c.name, c.precision, c.ensemble, c.architecture,
                     f"{st.size_bytes / 1024:.1f}" if st else "", recipe_summary(c)])
    return tabulate(rows, headers=["model", "precision", "ensemble", "architecture", "size KB", "recipe"],
                    tablefmt=fmt)
