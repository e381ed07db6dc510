"""``qrobench diagnose``: the gradient-masking report of a zoo model's leaderboard result.

Reads the model's result at the leaderboard ε (and its ε curve) from the results folder,
runs the short probe on the model itself (engine/diagnostics.py), prints one line per check
and stores the findings in the result file, where the leaderboard turns each flag into a
marked row with its reason. ``qrobench submit`` runs the same diagnosis on every entry
(``engine.diagnostics.diagnose_result``; re-exported here only for older imports).
"""

from __future__ import annotations

from pathlib import Path

from tabulate import tabulate

from . import cli_options as opts
from .engine.diagnostics import PROBE_POINTS, Finding, diagnose_result
from .engine.results import Result, write_result
from .errors import QrobenchError
from .protocol import LEADERBOARD_EPS, eps_text

__all__ = ["add_diagnose_parser", "cmd_diagnose", "diagnose_result", "format_findings"]


def format_findings(model: str, findings: list[Finding]) -> str:
    rows = [[f.check, "FLAG" if f.status == "flag" else f.status, f.reason] for f in findings]
    return f"{model}\n" + tabulate(rows, headers=["check", "status", "reason"], tablefmt="github")


def add_diagnose_parser(sub) -> None:
    p = sub.add_parser("diagnose", help="gradient-masking report of a zoo model's leaderboard result")
    p.add_argument("--model", required=True, help="zoo model name")
    p.add_argument("--results-dir", default="results", help="folder of result files (default results/)")
    p.add_argument("--result", default=None, help="the result file to diagnose (default: the model's "
                   "leaderboard result under --results-dir)")
    p.add_argument("--probe-points", type=int, default=PROBE_POINTS,
                   help=f"first N test points for the probe (default {PROBE_POINTS})")
    p.add_argument("--no-write", action="store_true", help="print only; leave the result file as it is")
    opts.add_zoo_dir(p)
    opts.add_data_dir(p)
    opts.add_device(p, default="cpu")
    p.set_defaults(func=cmd_diagnose)


def _leaderboard_result(results_dir: Path, model: str, cards) -> tuple[Path, Result, dict]:
    from .reports.collect import find_results, pick_one, pick_per_eps, same_eps, worst_case_curves

    results = find_results(results_dir)
    at_eps = [r for r in results if r.model == model and same_eps(r.result.eps, LEADERBOARD_EPS)]
    if not at_eps:
        raise QrobenchError(f"no result for {model!r} at ε = {eps_text(LEADERBOARD_EPS)} under {results_dir}; "
                            f"run 'qrobench run --model {model} ...' first")
    chosen = pick_one(at_eps, cards)
    return chosen.path, chosen.result, worst_case_curves(pick_per_eps(results, cards)).get(model, {})


def cmd_diagnose(args) -> int:
    from .data.registry import load_test_set
    from .engine.results import read_result
    from .zoo.store import Zoo

    if args.probe_points <= 0:
        raise QrobenchError(f"--probe-points must be positive, got {args.probe_points}")
    zoo = Zoo(args.zoo_dir)
    model, card = zoo.load(args.model)
    if args.result:
        path, result, curve = Path(args.result), read_result(args.result), None
        if result.model != card.name:
            raise QrobenchError(f"{path} is a result for {result.model!r}, not {card.name!r}")
    else:
        path, result, curve = _leaderboard_result(Path(args.results_dir), card.name, {card.name: card})
    data = load_test_set(result.dataset, args.probe_points, args.data_dir)
    findings = diagnose_result(result, model, data, curve, args.device, opts.command_line(args.argv),
                               args.probe_points)
    print(format_findings(card.name, findings))
    if not args.no_write:
        write_result(result, path)
        print(f"diagnosis stored in {path}")
    return 0
