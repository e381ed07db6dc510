"""``qrobench check``: robustness regression checks for CI.

Re-evaluates zoo models on a small fixed protocol (the first 200 test points, seed 0,
PGD-20, one pass) and compares clean, per-attack and worst-case accuracy with baselines
stored as ``results/check/<model>.json``. A drop beyond the tolerance (percentage points)
is a regression: the command prints the table and exits 1. Each baseline records its
protocol, and a check always re-runs exactly that protocol, so the comparison is like for
like even if the defaults here change later.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from tabulate import tabulate

from . import cli_options as opts
from .engine.config import EvalConfig, make_config
from .engine.evaluate import evaluate
from .engine.results import Result, read_result, write_result
from .errors import QrobenchError
from .protocol import DEFAULT_DATASET, LEADERBOARD_EPS, eps_text

CHECK_N = 200
CHECK_SEED = 0
CHECK_ATTACKS = ("pgd20",)
CHECK_EPS = LEADERBOARD_EPS
CHECK_REPEATS = 1  # stochastic models are seeded per batch, so one pass is repeatable
DEFAULT_TOLERANCE_PP = 2.0
BASELINE_SUBDIR = "check"

EXIT_OK, EXIT_REGRESSION = 0, 1


@dataclass(frozen=True)
class CheckProtocol:
    n: int = CHECK_N
    eps: float = CHECK_EPS
    seed: int = CHECK_SEED
    attacks: tuple[str, ...] = CHECK_ATTACKS
    repeats: int = CHECK_REPEATS

    def as_dict(self) -> dict:
        d = {"name": "check", **asdict(self)}
        d["attacks"] = list(self.attacks)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> CheckProtocol:
        return cls(n=int(d["n"]), eps=float(d["eps"]), seed=int(d["seed"]), attacks=tuple(d["attacks"]),
                   repeats=int(d.get("repeats", CHECK_REPEATS)))


@dataclass
class CheckRow:
    model: str
    metric: str
    stored: float  # fractions
    measured: float
    delta_pp: float
    status: str  # ok | REGRESSED | improved | settings changed (not like for like: no verdict)
    checkpoint: str  # same | changed (card sha256 vs the baseline's)


def baseline_path(results_dir: str | Path, model: str) -> Path:
    return Path(results_dir) / BASELINE_SUBDIR / f"{model}.json"


def read_baseline(path: Path) -> Result:
    try:
        r = read_result(path)
    except QrobenchError as e:
        raise QrobenchError(f"{e}; rewrite the baseline with 'qrobench check --update'") from None
    if (r.protocol or {}).get("name") != "check":
        raise QrobenchError(f"{path} is not a qrobench check baseline; rewrite it with 'qrobench check --update'")
    return r


def measure(zoo, name: str, protocol: CheckProtocol, data=None, data_dir=None, device="cpu",
            batch_size: int = 250, progress: bool = False, command: str | None = None) -> Result:
    """One evaluation of a zoo model under ``protocol`` (its card's sha256 recorded)."""
    model, card = zoo.load(name)
    cfg = make_config(protocol.attacks, target=card.name, zoo_dir=zoo.root, n=protocol.n, eps=protocol.eps,
                      seed=protocol.seed, repeats=protocol.repeats, batch_size=batch_size, device=device,
                      data_dir=data_dir, progress=progress)
    torch.manual_seed(protocol.seed)
    return evaluate(model, config=cfg, data=data, card=card, command=command, protocol=protocol.as_dict())


def _metrics(result: Result) -> dict[str, float]:
    m = {"clean": result.clean_acc, **result.robust_acc}
    if len(result.robust_acc) > 1:
        m["worst case"] = result.worst_case_acc
    return m


SETTINGS_CHANGED = "settings changed"


def changed_settings(stored: Result, measured: Result) -> list[str]:
    """The attacks whose settings differ between the baseline and this run (e.g. a randomised
    model's PGD now returns the last iterate, docs/protocol.md §6.4), or all of them where the
    scoring draw of a randomised model changed (§6.4: a column is scored under the clean pass's draw)."""
    if stored.score_draw != measured.score_draw:
        return list(stored.robust_acc)
    return [a for a in stored.robust_acc if stored.attacks.get(a) != measured.attacks.get(a)]


def compare(stored: Result, measured: Result, tolerance_pp: float) -> list[CheckRow]:
    """One row per metric of the baseline; a drop of more than ``tolerance_pp`` regresses. A
    metric whose attack settings changed since the baseline gets no verdict: it is not like for
    like, and the baseline needs ``--update``."""
    same = stored.card_sha256 == measured.card_sha256
    now = _metrics(measured)
    changed = set(changed_settings(stored, measured))
    rows = []
    for metric, before in _metrics(stored).items():
        after = now[metric]
        delta = 100.0 * (after - before)
        status = "REGRESSED" if delta < -tolerance_pp else ("improved" if delta > tolerance_pp else "ok")
        if metric in changed or (metric == "worst case" and changed):
            status = SETTINGS_CHANGED
        rows.append(CheckRow(stored.model, metric, before, after, delta, status,
                             "same" if same else "changed"))
    return rows


def format_rows(rows: list[CheckRow], fmt: str = "github") -> str:
    table = [[r.model, r.metric, f"{100 * r.stored:.2f}", f"{100 * r.measured:.2f}", f"{r.delta_pp:+.2f}",
              r.status, r.checkpoint] for r in rows]
    return tabulate(table, headers=["model", "metric", "stored %", "measured %", "delta pp", "status",
                                    "checkpoint"], tablefmt=fmt, disable_numparse=True)


def run_check(zoo, results_dir="results", models=None, tolerance_pp: float = DEFAULT_TOLERANCE_PP,
              data_dir=None, device="cpu", batch_size: int = 250, progress=False) -> list[CheckRow]:
    """Re-run each baselined model under its baseline's protocol and compare."""
    from .data.registry import load_test_set

    if tolerance_pp < 0:
        raise QrobenchError(f"--tolerance must be ≥ 0 percentage points, got {tolerance_pp}")
    folder = Path(results_dir) / BASELINE_SUBDIR
    if models is None:
        models = sorted(p.stem for p in folder.glob("*.json")) if folder.is_dir() else []
        if not models:
            raise QrobenchError(f"no baselines in {folder}; write them with 'qrobench check --update' "
                                "(on a known-good checkout)")
    baselines = {}
    for m in models:
        path = baseline_path(results_dir, m)
        if not path.is_file():
            raise QrobenchError(f"no baseline for {m!r} ({path}); write it with 'qrobench check --update "
                                f"--models {m}'")
        baselines[m] = read_baseline(path)
    cache: dict[int, object] = {}
    rows = []
    for m, stored in baselines.items():
        protocol = CheckProtocol.from_dict(stored.protocol)
        if protocol.n not in cache:
            cache[protocol.n] = load_test_set(DEFAULT_DATASET, protocol.n, data_dir)
        measured = measure(zoo, m, protocol, cache[protocol.n], data_dir, device, batch_size, progress)
        rows += compare(stored, measured, tolerance_pp)
    return rows


def update_baselines(zoo, results_dir="results", models=None, protocol: CheckProtocol = CheckProtocol(),
                     data_dir=None, device="cpu", batch_size: int = 250, progress=False,
                     command: str | None = None) -> list[Path]:
    """Measure and store baselines (all zoo models unless ``models``); written after every
    evaluation has finished."""
    from .data.registry import load_test_set

    models = list(models) if models else zoo.names()
    if not models:
        raise QrobenchError(f"no models in the zoo {zoo.root}; nothing to baseline")
    data = load_test_set(DEFAULT_DATASET, protocol.n, data_dir)
    results = [measure(zoo, m, protocol, data, data_dir, device, batch_size, progress, command) for m in models]
    return [write_result(r, baseline_path(results_dir, r.model)) for r in results]


def add_check_parser(sub) -> None:
    p = sub.add_parser("check", help="CI regression check: re-evaluate models and compare with stored baselines")
    p.add_argument("--models", default=None, help="comma-separated zoo models (default: every baselined "
                   "model; with --update every zoo model)")
    p.add_argument("--results-dir", default="results", help=f"baselines live in DIR/{BASELINE_SUBDIR}/ "
                   "(default results/)")
    p.add_argument("--tolerance", type=float, default=DEFAULT_TOLERANCE_PP,
                   help=f"allowed drop in percentage points (default {DEFAULT_TOLERANCE_PP:g})")
    p.add_argument("--update", action="store_true", help="measure and (over)write the baselines instead")
    p.add_argument("--n", type=int, default=None, help=f"with --update: first N points (default {CHECK_N})")
    opts.add_eps(p, default=None, help_default=f"with --update; default {eps_text(CHECK_EPS)}")
    opts.add_attacks(p, None, f"with --update; default {','.join(CHECK_ATTACKS)}")
    opts.add_zoo_dir(p)
    opts.add_data_dir(p)
    opts.add_device(p, default="cpu")
    opts.add_batch_size(p)
    opts.add_quiet(p)
    p.set_defaults(func=cmd_check)


def _protocol_from_args(args) -> CheckProtocol:
    if not args.update:
        given = [f"--{k}" for k in ("n", "eps", "attacks") if getattr(args, k) is not None]
        if given:
            raise QrobenchError(f"{', '.join(given)} only apply with --update: a check re-runs the protocol "
                                "stored in each baseline")
        return CheckProtocol()
    protocol = CheckProtocol(n=CHECK_N if args.n is None else args.n, eps=CHECK_EPS if args.eps is None else args.eps,
                             attacks=CHECK_ATTACKS if args.attacks is None else tuple(args.attacks))
    EvalConfig(attacks=protocol.attacks, n=protocol.n, eps=protocol.eps, seed=protocol.seed)  # checked up front
    return protocol


def cmd_check(args) -> int:
    from .zoo.store import Zoo

    models = [m.strip() for m in args.models.split(",") if m.strip()] if args.models else None
    protocol = _protocol_from_args(args)
    zoo = Zoo(args.zoo_dir)
    for m in models or []:
        zoo.card(m)  # unknown names fail here, with the list of valid ones
    if args.update:
        paths = update_baselines(zoo, args.results_dir, models, protocol, args.data_dir, args.device,
                                 args.batch_size, not args.quiet, opts.command_line(args.argv))
        print(f"baselines written (n={protocol.n}, ε={eps_text(protocol.eps)}, seed={protocol.seed}, "
              f"attacks={','.join(protocol.attacks)}):")
        print("\n".join(f"  {p}" for p in paths))
        return EXIT_OK
    rows = run_check(zoo, args.results_dir, models, args.tolerance, args.data_dir, args.device,
                     args.batch_size, not args.quiet)
    print(format_rows(rows))
    moved = sorted({r.model for r in rows if r.status == SETTINGS_CHANGED})
    if moved:
        print(f"WARNING: the attack settings of {', '.join(moved)} changed since the baseline, so those metrics are "
              f"not compared; re-baseline with 'qrobench check --update --models {','.join(moved)}'")
    bad = [r for r in rows if r.status == "REGRESSED"]
    if bad:
        names = sorted({r.model for r in bad})
        print(f"FAIL: {len(bad)} metric(s) of {', '.join(names)} dropped by more than {args.tolerance:g} "
              "percentage points")
        return EXIT_REGRESSION
    print(f"OK: every {'compared ' if moved else ''}metric within {args.tolerance:g} percentage points of its "
          "baseline")
    return EXIT_OK
