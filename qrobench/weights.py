"""``qrobench weights``: per-layer weight statistics of zoo models, as result data.

Sparsity and channel sparsity are properties of the deployed checkpoint alone, so they are
measured from it (never copied from a card) into ``results/weights/<model>.json``; the
leaderboard's per-layer table and plot read these files, not the networks.
"""

from __future__ import annotations

import json
import platform
import sys
import time
from pathlib import Path

from . import cli_options as opts
from ._version import __version__
from .errors import QrobenchError

WEIGHTS_SCHEMA = "qrobench-weights-v1"


def add_weights_parser(sub) -> None:
    p = sub.add_parser("weights", help="per-layer sparsity and zero channels of zoo models (results/weights)")
    p.add_argument("models", nargs="*", help="zoo model names (default: every model in the zoo)")
    opts.add_zoo_dir(p)
    p.add_argument("--output-dir", default="results/weights", help="folder for <model>.json (default results/weights)")
    p.set_defaults(func=cmd_weights)


def measure_model_weights(model, card, command: str) -> dict:
    import torch

    from .quant.measure import layer_table, measure_weights

    return {"schema": WEIGHTS_SCHEMA, "model": card.name, "card_sha256": card.sha256,
            "precision": card.precision, "recipe": card.recipe, "totals": measure_weights(model).as_dict(),
            "layers": layer_table(model), "command": command,
            "versions": {"qrobench": __version__, "torch": torch.__version__, "python": platform.python_version()},
            "timestamp": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}


def read_weights(folder: str | Path) -> dict[str, dict]:
    """model -> its weights file, for every valid file in ``folder`` (none: empty)."""
    out = {}
    for path in sorted(Path(folder).glob("*.json")) if Path(folder).is_dir() else []:
        try:
            d = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as e:
            raise QrobenchError(f"{path} is not readable JSON ({e}); re-run 'qrobench weights'") from None
        if d.get("schema") == WEIGHTS_SCHEMA:
            out[d["model"]] = d
    return out


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
