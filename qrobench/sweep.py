"""``qrobench sweep``: post-training quantization of a float zoo model over bit-widths and
methods, each point evaluated with one battery and written as an ordinary result file.

The points of a sweep differ only in how the same float weights were quantized, so their
curves (clean and worst-case accuracy against bits) isolate what quantization costs; the
float model itself is the first point. Each point is its own file (kept when present) with a
batch journal, so a killed sweep continues with ``--resume`` and a finished one is extended
by asking for more bits.
"""

from __future__ import annotations

import types
from pathlib import Path

from . import cli_options as opts
from .errors import QrobenchError

DEFAULT_BITS = "1,2,3,4,5,6,8"
DEFAULT_ATTACKS = ["pgd20", "aa"]
FLOAT_TAG = "float"


def point_file(out_dir: Path, model: str, tag: str, shard=None) -> Path:
    suffix = f"__shard{shard.index}of{shard.count}" if shard is not None and shard.count > 1 else ""
    return out_dir / f"{model}__{tag}{suffix}.json"


def add_sweep_parser(sub) -> None:
    p = sub.add_parser("sweep", help="post-training quantization of a float model over bit-widths, evaluated",
                       description="Quantize a float zoo model after training at each bit-width and method, "
                                   "evaluate every point (and the float model) with one battery, and write "
                                   "one result file per point under --output-dir.")
    p.add_argument("model", help="float zoo model, e.g. res20-fp")
    p.add_argument("--bits", default=DEFAULT_BITS, help=f"bit-widths, comma-separated (default {DEFAULT_BITS})")
    p.add_argument("--method", default="uniform,lgmp",
                   help="uniform (every layer at the bits) and/or lgmp (qrobench-LGMP per-layer bits at that "
                        "average); default both")
    opts.add_attacks(p, DEFAULT_ATTACKS, "pgd20,aa")
    p.add_argument("--n", "--points", dest="n", type=int, default=500, help="first N test points (default 500)")
    p.add_argument("--cascade", action="store_true",
                   help="attack each point only until one attack breaks it (cheaper worst case)")
    opts.add_batch_size(p)
    opts.add_device(p)
    opts.add_data_dir(p)
    opts.add_zoo_dir(p)
    p.add_argument("--threat-model", default="linf", choices=("linf", "corruptions"),
                   help="linf (default): the battery at ε = 8/255; corruptions: each point's common-corruptions "
                        "record (docs/protocol.md §6.12), written beside the L∞ point as <point>__corruptions.json")
    p.add_argument("--output-dir", default=None, help="folder for the point files (default results/sweeps/<model>)")
    p.add_argument("--resume", action="store_true", help="continue the point a killed sweep was evaluating")
    opts.add_quiet(p)
    p.set_defaults(func=cmd_sweep)


def _ints(text: str) -> list[int]:
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise QrobenchError(f"--bits must be whole numbers separated by commas, e.g. {DEFAULT_BITS}; "
                            f"got {text!r}") from None
    if not values or len(set(values)) != len(values):
        raise QrobenchError(f"--bits must list each bit-width once, got {text!r}")
    return sorted(values)


def cmd_sweep(args) -> int:
    import sys

    from .data.registry import load_test_set
    from .engine.config import make_config
    from .engine.evaluate import evaluate
    from .engine.journal import journal_path
    from .engine.results import write_result
    from .quant.ptq import check_sweep_args, quantize_post_training
    from .zoo.store import Zoo

    corruptions = args.threat_model == "corruptions"
    if corruptions and any(a == f or a.startswith(f + "=") for a in args.argv for f in ("--attacks", "--cascade")):
        raise QrobenchError("--threat-model corruptions runs no attacks; drop --attacks/--cascade")
    bits = _ints(args.bits)
    methods = [m.strip() for m in args.method.split(",") if m.strip()]
    check_sweep_args(methods, bits)
    zoo = Zoo(args.zoo_dir)
    model, card = zoo.load(args.model)
    if card.precision != "fp":
        raise QrobenchError(f"{args.model} is {card.precision}; a sweep quantizes a float model (e.g. res20-fp)")
    if "transfer" in args.attacks:
        raise QrobenchError("the transfer attack needs a surrogate per point; leave it out of a sweep")
    cfg = make_config(args.attacks, n=args.n, batch_size=args.batch_size, device=args.device,
                      data_dir=args.data_dir, progress=not args.quiet, cascade=args.cascade)
    out_dir = Path(args.output_dir) if args.output_dir else Path("results") / "sweeps" / card.name
    out_dir.mkdir(parents=True, exist_ok=True)
    data = load_test_set(cfg.dataset, cfg.n, cfg.data_dir)
    command = opts.command_line(args.argv)
    # bits outer, methods inner: a sweep cut short still holds like-for-like pairs
    points = [(FLOAT_TAG, None, None)] + [(f"{m}-{b}bit", m, b) for b in bits for m in methods]
    for tag, method, b in points:
        path = point_file(out_dir, card.name, f"{tag}__corruptions" if corruptions else tag)
        if path.exists():
            print(f"{tag:>14s}: kept {path}", file=sys.stderr)
            continue
        if method is None:
            net, spec = model, {"method": FLOAT_TAG, "bits_budget": 32, "avg_bits": 32.0, "fine_tuned": False}
            name, precision = card.name, card.precision
        else:
            net, spec = quantize_post_training(model, method, b)
            name = f"{card.name}:{tag}"
            precision = "mixed" if method == "lgmp" else _token(b)
        point_card = types.SimpleNamespace(
            name=name, sha256=card.sha256, architecture=card.architecture, ensemble=card.ensemble,
            precision=precision,
            recipe=f"{card.name} quantized after training: {spec.get('description', 'float, unquantized')}")
        if corruptions:
            from .threats.corruptions import evaluate_corruptions

            result = evaluate_corruptions(net, cfg.n, batch_size=cfg.batch_size, card=point_card, command=command,
                                          data_dir=cfg.data_dir, clean=data)
        else:
            result = evaluate(net, cfg, data=data, card=point_card, command=command,
                              journal=journal_path(path), resume=args.resume)
        result.sweep = {"source": card.name, "source_sha256": card.sha256, **spec}
        write_result(result, path)
        journal_path(path).unlink(missing_ok=True)
        what = (f"corruptions mean {100 * result.corruptions['mean']:.1f} %" if corruptions
                else f"worst case {100 * result.worst_case_acc:.1f} %")
        print(f"{tag:>14s}: clean {100 * result.clean_acc:.1f} %, {what} ({spec['avg_bits']:.2f} bits) -> {path}",
              file=sys.stderr)
    return 0


def _token(bits: int) -> str:
    from .protocol import precision_for_bits

    return precision_for_bits(bits)
