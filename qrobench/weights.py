"""``qrobench weights``: per-layer weight statistics of zoo models, as result data.

Sparsity and channel sparsity are properties of the deployed checkpoint alone, so they are
measured from it (never copied from a card) into ``results/weights/<model>.json``; the
leaderboard's per-layer table and plot read these files, not the networks.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from . import cli_options as opts
from .quant.weight_records import WEIGHTS_SCHEMA, measure_model_weights, read_weights

# the record itself is library code (quant/weight_records.py); re-exported for older imports
__all__ = ["WEIGHTS_SCHEMA", "add_weights_parser", "cmd_weights", "measure_model_weights", "read_weights"]


def add_weights_parser(sub) -> None:
    p = sub.add_parser("weights", help="per-layer sparsity and zero channels of zoo models (results/weights)")
    p.add_argument("models", nargs="*", help="zoo model names (default: every model in the zoo)")
    opts.add_zoo_dir(p)
    p.add_argument("--output-dir", default="results/weights", help="folder for <model>.json (default results/weights)")
    p.set_defaults(func=cmd_weights)


def cmd_weights(args) -> int:
    from .files import atomic_write_text
    from .zoo.store import Zoo

    zoo = Zoo(args.zoo_dir)
    names = args.models or zoo.names()
    out = Path(args.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    for name in names:
        model, card = zoo.load(name)
        d = measure_model_weights(model, card, f"qrobench weights {name}")
        path = atomic_write_text(out / f"{card.name}.json", json.dumps(d, indent=2) + "\n")
        t = d["totals"]
        print(f"{card.name}: sparsity {100 * t['sparsity']:.1f} %, channel sparsity "
              f"{100 * t['channel_sparsity']:.2f} % ({t['zero_channels']}/{t['total_channels']}) -> {path}",
              file=sys.stderr)
    return 0
