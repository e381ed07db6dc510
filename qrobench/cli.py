"""The ``qrobench`` command: a thin layer over the Python API.

Every user error is one line on stderr and exit status 2; nothing under results/ is
written until the evaluation has finished.
"""

from __future__ import annotations

import argparse
import dataclasses
import shlex
import sys
from fractions import Fraction
from pathlib import Path

from ._version import __version__
from .errors import QrobenchError


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, no usage dump
        self.exit(2, f"qrobench: error: {message} (see '{self.prog} --help')\n")


def parse_eps(text: str) -> float:
    try:
        v = float(Fraction(text.strip()))
    except (ValueError, ZeroDivisionError):
        raise argparse.ArgumentTypeError(f"--eps must be a number or a fraction like 8/255, got {text!r}") from None
    return v


def parse_eps_list(text: str) -> list[float]:
    """One ε or a comma-separated list (``2/255,4/255,8/255``) for an ε curve."""
    values = [parse_eps(t) for t in text.split(",") if t.strip()]
    if not values:
        raise argparse.ArgumentTypeError("--eps needs a value such as 8/255")
    return values


def _attack_list(text: str) -> list[str]:
    names = [a.strip() for a in text.split(",") if a.strip()]
    if not names:
        raise argparse.ArgumentTypeError("--attacks needs at least one attack name")
    return names


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="qrobench", description="Adversarial robustness benchmark for quantized networks.")
    p.add_argument("--version", action="version", version=f"qrobench {__version__}")
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)

    r = sub.add_parser("run", help="evaluate a zoo model under an attack battery")
    r.add_argument("--model", required=True, help="zoo model name (see 'qrobench list')")
    r.add_argument("--attacks", type=_attack_list, default=["pgd20"],
                   help="comma-separated attack names (see 'qrobench attacks'); default pgd20")
    r.add_argument("--n", type=int, default=1000, help="first N test points (default 1000)")
    r.add_argument("--eps", type=parse_eps_list, default=[8 / 255],
                   help="L∞ budget, e.g. 8/255 (default); a list 2/255,4/255,8/255 runs once per ε "
                        "and writes one result file per ε (an ε curve)")
    r.add_argument("--seed", type=int, default=0)
    r.add_argument("--repeats", type=int, default=None,
                   help="seeds to average for stochastic models (default 3; 1 for deterministic)")
    r.add_argument("--batch-size", type=int, default=250)
    r.add_argument("--device", default="auto", help="auto (default), cpu or cuda")
    r.add_argument("--data-dir", default=None, help="CIFAR-10 folder (else $QROBENCH_DATA, download, bundled)")
    r.add_argument("--zoo-dir", default=None, help="zoo folder (else $QROBENCH_ZOO, else model_zoo/)")
    r.add_argument("--output", default=None, help="result JSON path (default results/runs/<model>__<time>.json)")
    r.add_argument("--results-dir", default="results/runs", help="folder for the default output path")
    r.add_argument("--surrogate", default=None, help="zoo model the 'transfer' attack crafts on")
    r.add_argument("--eot-iter", type=int, default=None, help="noise draws per gradient for eot-pgd20 (10)")
    r.add_argument("--quiet", action="store_true", help="no progress bars")
    r.set_defaults(func=cmd_run)

    mg = sub.add_parser("merge", help="combine result files holding different seeds of one evaluation",
                        description="Combine result files that hold different seeds of the same evaluation "
                                    "(same model, points, ε, attacks, batch size) into one file with mean ± "
                                    "std over all their seeds, e.g. seeds run one per core: "
                                    "'qrobench run ... --seed 1 --repeats 1'.")
    mg.add_argument("files", nargs="+", help="result JSON files from 'qrobench run'")
    mg.add_argument("--output", required=True, help="path of the merged result JSON")
    mg.set_defaults(func=cmd_merge)

    ls = sub.add_parser("list", help="list the zoo's registered models")
    ls.add_argument("--zoo-dir", default=None)
    ls.set_defaults(func=cmd_list)

    at = sub.add_parser("attacks", help="list the attacks and their settings")
    at.set_defaults(func=cmd_attacks)

    try:
        from .train.cli import add_quantize_parser, add_train_parser
    except ImportError:  # pragma: no cover - training is optional at import time
        pass
    else:
        add_train_parser(sub)
        add_quantize_parser(sub)
    from .check import add_check_parser
    from .reports.cli import add_leaderboard_parser
    from .submit.cli import add_submit_parser

    add_leaderboard_parser(sub)
    add_submit_parser(sub)
    add_check_parser(sub)
    return p


def cmd_run(args) -> int:
    from .engine.evaluate import EvalConfig, evaluate
    from .engine.results import default_output_path, write_result
    from .reports.console import format_result_table
    from .zoo.store import Zoo

    eps_list = args.eps if isinstance(args.eps, list) else [args.eps]
    if len(set(eps_list)) != len(eps_list):
        raise QrobenchError("--eps lists a value twice")
    cfg = EvalConfig(attacks=args.attacks, n=args.n, eps=eps_list[0], seed=args.seed,
                     batch_size=args.batch_size, device=args.device, repeats=args.repeats,
                     data_dir=args.data_dir, progress=not args.quiet)
    for e in eps_list:
        dataclasses.replace(cfg, eps=e).validate()
    if args.surrogate:
        cfg.attack_options.setdefault("transfer", {})["surrogate"] = args.surrogate
    if args.eot_iter is not None:
        if args.eot_iter <= 0:
            raise QrobenchError(f"--eot-iter must be positive, got {args.eot_iter}")
        cfg.attack_options.setdefault("eot-pgd20", {})["eot_iter"] = args.eot_iter
    out = Path(args.output) if args.output else None
    if out is not None and out.is_dir():
        raise QrobenchError(f"--output {out} is a folder; give a file path such as {out}/result.json")

    from .data.cifar10 import load_cifar10_test
    from .zoo.factory import load_entry

    zoo = Zoo(args.zoo_dir)
    model, card = load_entry(zoo, args.model)  # registered architecture, or a submitted factory
    data = load_cifar10_test(args.n, args.data_dir)
    print(f"qrobench {__version__}: {card.name} on {len(data)} CIFAR-10 test points from {data.source}",
          file=sys.stderr)
    results = [evaluate(model, config=dataclasses.replace(cfg, eps=e), data=data, card=card, zoo=zoo)
               for e in eps_list]  # every evaluation finishes before anything is written
    for result in results:
        result["command"] = "qrobench " + " ".join(shlex.quote(a) for a in args.argv)
        if len(eps_list) == 1:
            path = out or default_output_path(card.name, args.results_dir)
        else:  # an ε curve: one file per ε, named <stem>__eps<k>-255
            tag = _eps_tag(result["eps"])
            path = out.with_name(f"{out.stem}__eps{tag}{out.suffix}") if out else \
                default_output_path(f"{card.name}__eps{tag}", args.results_dir)
        path = write_result(result, path)
        print(format_result_table(result))
        print(f"result written to {path}")
    return 0


def cmd_merge(args) -> int:
    from .engine.merge import merge_results
    from .engine.results import write_result
    from .reports.console import format_result_table

    out = Path(args.output)
    if out.is_dir():
        raise QrobenchError(f"--output {out} is a folder; give a file path such as {out}/result.json")
    result = merge_results(args.files)  # every check passes before anything is written
    result["command"] = "qrobench " + " ".join(shlex.quote(a) for a in args.argv)
    path = write_result(result, out)
    print(format_result_table(result))
    print(f"{result['repeats']} seeds merged into {path}")
    return 0


def _eps_tag(eps: float) -> str:
    k = eps * 255
    return f"{round(k):d}-255" if abs(k - round(k)) < 1e-6 else f"{eps:.5f}"


def cmd_list(args) -> int:
    from .reports.console import format_zoo_table
    from .zoo.store import Zoo

    zoo = Zoo(args.zoo_dir)
    cards = zoo.cards()
    if not cards:
        print(f"no models in {zoo.root}")
        return 0
    from .quant.metrics import quant_stats

    stats = {}
    for c in cards:
        try:
            stats[c.name] = quant_stats(zoo.build(c))
        except QrobenchError:
            pass
    print(format_zoo_table(cards, stats))
    return 0


def cmd_attacks(args) -> int:
    import torch.nn as nn
    from tabulate import tabulate

    from .attacks import create_attack, list_attacks

    rows = []
    for name in list_attacks():
        if name == "transfer":
            rows.append([name, "black-box", "PGD-20 (α 2/255, random start) crafted on a surrogate zoo model"])
            continue
        atk = create_attack(name, nn.Identity())
        s = {k: v for k, v in atk.settings().items() if k not in ("eps", "norm")}
        kind = "white-box" if atk.white_box else "black-box"
        rows.append([name, kind, ", ".join(f"{k}={_fmt(v)}" for k, v in s.items())])
    print(tabulate(rows, headers=["attack", "kind", "settings (eps 8/255, L∞ unless --eps)"], tablefmt="github"))
    return 0


def _fmt(v):
    if isinstance(v, float):
        k = v * 255
        return f"{round(k, 2):g}/255" if abs(k - round(k, 1)) < 1e-6 and 0 < k < 64 else f"{v:g}"
    return v


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parser.parse_args(argv)
    args.argv = argv
    try:
        return args.func(args)
    except QrobenchError as e:
        print(f"qrobench: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("qrobench: interrupted; nothing was written", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
