"""``qrobench leaderboard``: render the leaderboard from the result files under results/."""

from __future__ import annotations

from .. import cli_options as opts
from ..errors import QrobenchError


def add_leaderboard_parser(sub) -> None:
    p = sub.add_parser("leaderboard", help="render the leaderboard (md, csv, json, html, plots) from results/")
    p.add_argument("--results-dir", default="results", help="folder of result JSONs, read recursively "
                   "(default results/)")
    p.add_argument("--output", default=None, help="folder for leaderboard.* and plots/ (default: --results-dir)")
    opts.add_zoo_dir(p, "zoo folder, for missing and stale results")
    p.add_argument("--sort", default="worst_case",
                   help="column to sort by, optionally :asc or :desc (default worst_case; e.g. clean, "
                        "pgd20, size_kb:asc, channel_sparsity)")
    p.add_argument("--filter", action="append", default=[], metavar="EXPR",
                   help="keep rows matching COLUMN OP VALUE (OP: = != < <= > >= ~); repeatable, e.g. "
                        "--filter 'bits<=4' --filter precision=tnn")
    opts.add_eps(p, help_default="the table's; default 8/255, the leaderboard's")
    p.add_argument("--no-reported", action="store_true", help="leave out the published reference rows")
    p.add_argument("--no-plots", action="store_true", help="skip the PNG/SVG plots")
    p.set_defaults(func=cmd_leaderboard)


def cmd_leaderboard(args) -> int:
    from pathlib import Path

    from ..zoo.store import default_zoo_dir
    from .build import write_leaderboard
    from .render import to_markdown

    zoo_dir = args.zoo_dir
    if zoo_dir is not None and not Path(zoo_dir).is_dir():
        raise QrobenchError(f"--zoo-dir {zoo_dir!r} does not exist")
    if zoo_dir is None:
        zoo_dir = default_zoo_dir()
    eps = args.eps
    lb = write_leaderboard(args.results_dir, args.output, zoo_dir, eps=eps, sort=args.sort,
                           filters=args.filter, reported=not args.no_reported, plots=not args.no_plots)
    print(to_markdown(lb.table, lb.summary, eps, args.sort, None, lb.n_files))
    print("written: " + ", ".join(str(p) for p in lb.files if p.suffix != ".svg"))
    return 0
