"""The ``qrobench`` command: a thin layer over the Python API.

Every user error is one line on stderr and exit status 2; nothing under results/ is
written until the evaluation has finished.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from . import cli_options as opts
from ._version import __version__
from .errors import QrobenchError
from .protocol import GRAD_PRECISIONS, STOCHASTIC_REPEATS, eps_tag, eps_text, setting_text


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, no usage dump
        self.exit(2, f"qrobench: error: {message} (see '{self.prog} --help')\n")


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="qrobench", description="Adversarial robustness benchmark for quantized networks.")
    p.add_argument("--version", action="version", version=f"qrobench {__version__}")
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)

    r = sub.add_parser("run", help="evaluate a zoo model (or an ONNX model) under an attack battery")
    which = r.add_mutually_exclusive_group(required=True)
    which.add_argument("--model", help="zoo model name (see 'qrobench list')")
    which.add_argument("--onnx", metavar="FILE", help="an ONNX model (e.g. onnxruntime int8, QDQ), run by ONNX Runtime; "
                       "gradient attacks go through its twin (BPDA)")
    opts.add_twin(r)
    opts.add_attacks(r, ["pgd20"], "default pgd20")
    r.add_argument("--n", "--points", dest="n", type=int, default=1000,
                   help="first N test points (default 1000); --points is the spelling to use under torchrun, "
                        "whose own parser would read --n as an abbreviation of its options")
    opts.add_eps(r, curve=True, default=None, help_default="default: the threat model's, 8/255 for linf")
    opts.add_axes(r)
    r.add_argument("--seed", type=int, default=0)
    r.add_argument("--repeats", type=int, default=None,
                   help=f"seeds to average for stochastic models (default {STOCHASTIC_REPEATS}; 1 for deterministic)")
    opts.add_batch_size(r)
    opts.add_device(r)
    opts.add_data_dir(r)
    opts.add_zoo_dir(r)
    r.add_argument("--output", default=None, help="result JSON path (default results/runs/<model>__<time>.json)")
    r.add_argument("--results-dir", default="results/runs", help="folder for the default output path")
    r.add_argument("--surrogate", default=None, help="zoo model the 'transfer' attack crafts on")
    r.add_argument("--eot-iter", type=int, default=None, help="noise draws per gradient for eot-pgd20 (10)")
    r.add_argument("--grad-precision", choices=GRAD_PRECISIONS, default=None,
                   help="precision of the PGD family's gradient passes (default fp32; bf16: autocast, faster on "
                        "CPUs with AMX and on GPUs; misclassification is still decided in fp32; recorded in the file)")
    r.add_argument("--shard", type=_shard_arg, default=None, metavar="I/K",
                   help="evaluate only shard I of K (I from 0): a contiguous range of whole batches of the "
                        "first N points; 'qrobench merge' of all K files equals the one-process result")
    r.add_argument("--resume", action="store_true",
                   help="continue the killed run that was writing --output, from its journal")
    r.add_argument("--expect-clean", default=None, metavar="RESULT.json",
                   help="stop before attacking unless this machine's clean predictions on all of RESULT.json's "
                        "points equal the ones it holds (e.g. the zoo row the pieces will join): a model or "
                        "CPU that computes other logits makes pieces that cannot be merged")
    r.add_argument("--cascade", action="store_true",
                   help="attack each point only until one attack breaks it (AutoAttack-style): the worst case "
                        "is exact and cheaper, per-attack accuracies become cumulative; the result says so")
    r.add_argument("--cascade-from", default=None, metavar="RESULT.json",
                   help="attack only the points that RESULT.json's attacks (a run of the same model, points and "
                        "seeds) all left standing: the worst case over both files is exact for less compute; "
                        "these attacks' own accuracies are unknown (n/a in reports), and the result says so")
    r.add_argument("--cascade-attacks", type=opts.attack_list_arg, default=None, metavar="A,B",
                   help="with --cascade-from: continue from these of its attacks only (default: all of them)")
    r.add_argument("--patterns", type=int, default=None,
                   help="--threat-model bit-errors: seeded error patterns per bit error rate (default 25)")
    r.add_argument("--cap", type=int, default=None,
                   help="--threat-model bit-flip: most flips before the model is reported as '> cap' (default 200)")
    r.add_argument("--float-as", choices=("int8-ptq", "float32"), default="int8-ptq",
                   help="--threat-model bit-errors, float models: errors in int8 post-training codes (default) "
                        "or in the raw float32 words")
    opts.add_corruptions(r)
    r.add_argument("--workers", type=int, default=None, metavar="K",
                   help="run as K processes on this machine (torchrun; gloo on the CPU, nccl on GPUs)")
    opts.add_quiet(r)
    r.set_defaults(func=cmd_run)

    mg = sub.add_parser("merge", help="combine result files holding different seeds of one evaluation",
                        description="Combine result files that hold different seeds of the same evaluation "
                                    "(same model, points, ε, attacks, batch size) into one file with mean ± "
                                    "std over all their seeds, e.g. seeds run one per core: "
                                    "'qrobench run ... --seed 1 --repeats 1'.")
    mg.add_argument("files", nargs="+", help="result JSON files from 'qrobench run'")
    mg.add_argument("--output", required=True, help="path of the merged result JSON")
    mg.set_defaults(func=cmd_merge)

    cp = sub.add_parser("compare", help="paired test of two results on the same points (per-point outcomes)",
                        description="Paired test of two results' worst cases over the same attacks on the same "
                                    "points. Refused when the points (n, first index, data set), the threat "
                                    "model or ε differ; a warning when the seeds or batch sizes differ.")
    cp.add_argument("files", nargs=2, help="two result JSON files measured on the same points")
    cp.add_argument("--attacks", type=opts.attack_list_arg, default=None,
                    help="worst case over these attacks, which both files must hold (default: the attacks "
                         "both files measured)")
    cp.set_defaults(func=cmd_compare)

    ls = sub.add_parser("list", help="list the zoo's registered models")
    ls.add_argument("--zoo-dir", default=None)
    ls.set_defaults(func=cmd_list)

    at = sub.add_parser("attacks", help="list the attacks, the norms they search and their settings")
    at.add_argument("--threat-model", default=None, metavar="NAME",
                    help="show the settings in this threat model's ball and at its default ε (default linf)")
    at.set_defaults(func=cmd_attacks)

    try:
        from .train.cli import add_quantize_parser, add_train_parser
    except ImportError:  # pragma: no cover - training is optional at import time
        pass
    else:
        add_train_parser(sub)
        add_quantize_parser(sub)
    from .check import add_check_parser
    from .deploy import add_deploy_parser
    from .diagnose import add_diagnose_parser
    from .reports.cli import add_leaderboard_parser
    from .submit.cli import add_submit_parser
    from .sweep import add_sweep_parser
    from .weights import add_weights_parser

    add_leaderboard_parser(sub)
    add_submit_parser(sub)
    add_check_parser(sub)
    add_diagnose_parser(sub)
    add_sweep_parser(sub)
    add_weights_parser(sub)
    add_deploy_parser(sub)
    return p


def _shard_arg(text: str):
    from .engine.shards import Shard

    try:
        return Shard.parse(text)
    except QrobenchError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def cmd_run(args) -> int:
    from .data.registry import check_dataset, load_test_set
    from .engine import distributed
    from .engine.config import make_config
    from .engine.evaluate import evaluate
    from .engine.journal import journal_path
    from .engine.merge import merge_shards
    from .engine.results import default_output_path, read_result, write_result
    from .engine.shards import WHOLE
    from .reports.console import format_result_table
    from .zoo.store import Zoo
    from .zoo.twin import resolve_twin

    command = os.environ.get(distributed.COMMAND_ENV) or opts.command_line(args.argv)
    if args.threat_model == "corruptions":
        return _run_corruptions(args, command)
    if args.corruptions is not None or args.corruption_source is not None:
        raise QrobenchError("--corruptions and --corruption-source belong to --threat-model corruptions")
    if args.threat_model in ("bit-errors", "bit-flip"):
        return _run_weight_threat(args, command)
    if args.patterns is not None or args.cap is not None:
        raise QrobenchError("--patterns and --cap belong to --threat-model bit-errors and bit-flip")
    ranks = distributed.launched_by_torchrun()
    if args.workers is not None and not ranks:
        if args.shard is not None:
            raise QrobenchError("--workers splits the points into shards itself; drop --shard")
        if args.output is None:
            raise QrobenchError("--workers needs --output (all ranks write one result file)")
        argv = list(args.argv)
        i = argv.index("--workers") if "--workers" in argv else None
        argv = argv[:i] + argv[i + 2:] if i is not None else [a for a in argv if not a.startswith("--workers=")]
        return distributed.launch(args.workers, argv, command)
    if ranks and args.shard is not None:
        raise QrobenchError("under torchrun each rank evaluates its own shard; drop --shard")
    if args.resume and args.output is None:
        raise QrobenchError("--resume needs --output: the path of the result the killed run was writing")
    if ranks and args.output is None:
        raise QrobenchError("a torchrun evaluation needs --output (rank 0 writes the one result file)")

    out = Path(args.output) if args.output else None
    if out is not None and out.is_dir():
        raise QrobenchError(f"--output {out} is a folder; give a file path such as {out}/result.json")
    zoo = Zoo(args.zoo_dir)
    twin, _ = resolve_twin(args.twin, args.zoo_dir)
    rank, shard, device = 0, args.shard or WHOLE, args.device
    if ranks:
        shard, device = distributed.start(args.device)
        rank = shard.index
    eps_values = args.eps or [None]  # None: the threat model's own ε
    fields = dict(n=args.n, eps=eps_values[0], threat_model=args.threat_model, dataset=args.dataset,
                  seed=args.seed, batch_size=args.batch_size, device=device, repeats=args.repeats,
                  data_dir=args.data_dir, progress=not args.quiet and rank == 0, cascade=args.cascade, shard=shard)
    if args.model is not None:
        zoo.card(args.model)  # an unknown model fails before the settings are resolved
    target = args.model or Path(args.onnx).stem
    cfg = make_config(args.attacks, target=target, zoo_dir=args.zoo_dir, surrogate=args.surrogate,
                      eot_iter=args.eot_iter, grad_precision=args.grad_precision, **fields)
    if args.model is not None:
        model, card = zoo.load(args.model, twin=twin)  # registered architecture, a factory, a toolkit format
    else:
        model, card = _onnx_model(args.onnx, twin)
    data = load_test_set(cfg.dataset, cfg.n, cfg.data_dir)
    if rank == 0:
        where = f", shard {cfg.shard}" if args.shard else f", {cfg.shard.count} ranks" if ranks else ""
        print(f"qrobench {__version__}: {card.name} on {len(data)} {check_dataset(cfg.dataset).title} test points "
              f"from {data.source}, {cfg.threat_model} ε = {eps_text(cfg.eps)}{where}",
              file=sys.stderr)

    def path_of(eps: float) -> Path:
        if len(eps_values) == 1:
            return out or default_output_path(card.name, args.results_dir)
        tag = eps_tag(eps)  # an ε curve: one file per ε, named <stem>__eps<k>-255
        return out.with_name(f"{out.stem}__eps{tag}{out.suffix}") if out else \
            default_output_path(f"{card.name}__eps{tag}", args.results_dir)

    eps_values = [cfg.eps] if eps_values == [None] else eps_values
    paths = [path_of(e) for e in eps_values]
    journals = [journal_path(p if not ranks else p.with_name(f"{p.name}.rank{rank}-of-{cfg.shard.count}"))
                for p in paths]
    expected = read_result(args.expect_clean) if args.expect_clean else None
    prior = read_result(args.cascade_from) if args.cascade_from else None
    if args.cascade_attacks is not None and prior is None:
        raise QrobenchError("--cascade-attacks names attacks of the --cascade-from file; give --cascade-from")
    if prior is not None and len(eps_values) > 1:
        raise QrobenchError("--cascade-from continues one run at one ε; give one --eps")
    results = [evaluate(model, cfg.replace(eps=e), data=data, card=card, command=command,
                        journal=j, resume=args.resume, expect_clean=expected, cascade_from=prior,
                        cascade_attacks=args.cascade_attacks)
               for e, j in zip(eps_values, journals, strict=True)]  # all finish before anything is written
    if ranks:
        gathered = [distributed.gather(r) for r in results]
        if rank == 0:
            results = [merge_shards([(f"rank {i}", s) for i, s in enumerate(g)], command) for g in gathered]
    if rank == 0:
        for result, path in zip(results, paths, strict=True):
            path = write_result(result, path)
            print(format_result_table(result))
            print(f"result written to {path}")
    if ranks:
        distributed.finish()  # every rank keeps its journal until rank 0 has written the result
    for j in journals:
        j.unlink(missing_ok=True)
    return 0


def _run_weight_threat(args, command: str) -> int:
    """Threats to the stored codes (qrobench/threats): random bit errors, the bit-flip attack."""
    from .data.cifar10 import load_cifar10_train
    from .data.registry import load_test_set
    from .engine.results import default_output_path, write_result
    from .reports.console import format_result_table
    from .threats import bit_errors, bit_flip
    from .zoo.store import Zoo

    tm = args.threat_model
    attacked = tm == "bit-errors" and any(a == "--attacks" or a.startswith("--attacks=") for a in args.argv)
    flags = ("--onnx", "--shard", "--workers", "--cascade", "--cascade-from", "--cascade-attacks", "--resume",
             "--twin", "--expect-clean")
    given = [f for f in (flags if attacked else ("--attacks", "--eps") + flags)
             if any(a == f or a.startswith(f + "=") for a in args.argv)]
    if given:
        what = ("runs its one input attack in one process per error pattern" if attacked else
                "perturbs the stored weights and runs no input attacks (bit-errors takes one, e.g. --attacks pgd20)")
        raise QrobenchError(f"--threat-model {tm} {what}; drop {', '.join(given)}")
    attack, eps = None, None
    if attacked:  # an input attack on the model holding the errors
        if len(args.attacks) != 1:
            raise QrobenchError(f"--threat-model bit-errors runs one input attack under the errors (e.g. --attacks "
                                f"pgd20), got {len(args.attacks)}: {','.join(args.attacks)}")
        if args.eps is not None and len(args.eps) != 1:
            raise QrobenchError("--threat-model bit-errors with --attacks takes one --eps (the L∞ budget)")
        attack, eps = args.attacks[0], (args.eps[0] if args.eps else None)
    if (tm == "bit-errors" and args.cap is not None) or (tm == "bit-flip" and args.patterns is not None):
        raise QrobenchError("--patterns belongs to bit-errors, --cap to bit-flip")
    if args.model is None:
        raise QrobenchError(f"--threat-model {tm} needs --model (a zoo model's stored codes)")
    stem = f"{args.model}__{tm}" + (f"+{attack}" if attack else "")
    out = Path(args.output) if args.output else default_output_path(stem, args.results_dir)
    model, card = Zoo(args.zoo_dir).load(args.model)
    data = load_test_set(args.dataset, args.n, args.data_dir)
    if attack:
        result = bit_errors.evaluate_bit_errors_attacked(
            model, data, attack=attack, patterns=args.patterns or bit_errors.PATTERNS, seed=args.seed, eps=eps,
            float_as=args.float_as, batch_size=args.batch_size, card=card, command=command)
    elif tm == "bit-errors":
        result = bit_errors.evaluate_bit_errors(model, data, patterns=args.patterns or bit_errors.PATTERNS,
                                                seed=args.seed, float_as=args.float_as, batch_size=args.batch_size,
                                                card=card, command=command)
    else:
        x, y = bit_flip.attack_batch(load_cifar10_train(args.data_dir), seed=args.seed)
        result = bit_flip.bit_flip_attack(model, x, y, data, cap=args.cap or bit_flip.CAP, float_as=args.float_as,
                                          batch_size=args.batch_size, card=card, command=command, seed=args.seed)
    path = write_result(result, out)
    print(format_result_table(result))
    print(f"result written to {path}")
    return 0


def _run_corruptions(args, command: str) -> int:
    """Common corruptions (CIFAR-10-C): plain accuracy per corruption and severity, journaled per column."""
    from .engine.journal import Journal, journal_path
    from .engine.results import default_output_path, write_result
    from .reports.console import format_result_table
    from .threats import corruptions
    from .zoo.store import Zoo

    given = [f for f in ("--attacks", "--eps", "--onnx", "--shard", "--workers", "--cascade", "--cascade-from",
                         "--cascade-attacks", "--twin", "--expect-clean",
                         "--patterns",
                         "--cap", "--float-as", "--surrogate", "--eot-iter", "--grad-precision")
             if any(a == f or a.startswith(f + "=") for a in args.argv)]
    if given:
        raise QrobenchError(f"--threat-model corruptions scores corrupted test images and runs no input attacks; "
                            f"drop {', '.join(given)}")
    if args.dataset != "cifar10":
        raise QrobenchError(f"--threat-model corruptions measures CIFAR-10-C; drop --dataset {args.dataset}")
    if args.resume and args.output is None:
        raise QrobenchError("--resume needs --output: the path of the result the killed run was writing")
    names = corruptions.check_corruptions(args.corruptions or corruptions.BENCHMARK)
    out = Path(args.output) if args.output else default_output_path(f"{args.model}__corruptions", args.results_dir)
    source = corruptions.resolve_source(args.corruption_source or "auto", args.data_dir)
    model, card = Zoo(args.zoo_dir).load(args.model)
    run = {"model": card.name, "card_sha256": card.sha256, "n": args.n, "corruptions": list(names),
           "source": source, "seed": args.seed, "repeats": args.repeats, "batch_size": args.batch_size}
    journal = Journal(journal_path(out), {"threat_model": "corruptions", **run}, resume=args.resume)
    try:
        result = corruptions.evaluate_corruptions(
            model, args.n, corruptions=names, source=source, seed=args.seed,
            repeats=args.repeats, batch_size=args.batch_size, card=card, command=command, data_dir=args.data_dir,
            journal=journal)
    finally:
        journal.close()
    path = write_result(result, out)
    print(format_result_table(result))
    print(f"mean over {result.corruptions['columns']} corruption columns: {100 * result.corruptions['mean']:.2f} % "
          f"(clean {100 * result.clean_acc:.2f} %)")
    print(f"result written to {path}")
    journal_path(out).unlink(missing_ok=True)
    return 0


def _onnx_model(path: str, twin):
    """An ONNX file outside the zoo: the runtime model and what the record says it is."""
    from types import SimpleNamespace

    from .quant.measure import measure_weights
    from .toolkits.onnx_models import load_onnx

    model = load_onnx(path, twin=twin)
    stats = measure_weights(model)
    card = SimpleNamespace(name=Path(path).stem, architecture=f"onnx:{Path(path).name}", ensemble=1,
                           precision=stats.precision, recipe=None, sha256=model.deployed.sha256)
    return model, card


def cmd_merge(args) -> int:
    from .engine.merge import merge_results
    from .engine.results import write_result
    from .reports.console import format_result_table

    out = Path(args.output)
    if out.is_dir():
        raise QrobenchError(f"--output {out} is a folder; give a file path such as {out}/result.json")
    result = merge_results(args.files, command=opts.command_line(args.argv))  # checked before writing
    path = write_result(result, out)
    print(format_result_table(result))
    what = f"{len(args.files)} files ({len(result.attacks)} attacks, {result.repeats} seed(s))"
    print(f"{what} merged into {path}")
    return 0


def cmd_compare(args) -> int:
    from .engine.results import read_result
    from .reports.compare import compare_results

    a, b = (read_result(f) for f in args.files)
    comparison = compare_results(a, b, args.attacks, labels=tuple(args.files))
    for w in comparison.warnings:
        print(f"warning: {w}", file=sys.stderr)
    print("\n".join(comparison.lines()))
    return 0


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
            # an ONNX entry is its file (no architecture to build); the others' sizes follow from the structure
            stats[c.name] = quant_stats(zoo.load(c.name)[0] if c.format == "onnx" else zoo.build(c))
        except QrobenchError:
            pass
    print(format_zoo_table(cards, stats))
    return 0


def cmd_attacks(args) -> int:
    import torch.nn as nn
    from tabulate import tabulate

    from .attacks import create_attack, list_attacks
    from .attacks.base import attack_norms
    from .protocol import threat_model

    try:
        tm = threat_model(getattr(args, "threat_model", None))
    except ValueError as e:
        raise QrobenchError(f"--threat-model: {e}") from None
    if tm.token == "corruptions":
        from .threats.corruptions import describe

        print(describe())
        return 0
    if not tm.is_norm_ball:
        print(f"threat model {tm.token} perturbs the {tm.target}, not the input: no attack battery runs under it "
              f"(its budget is the {tm.budget}; 'qrobench run --model M --threat-model {tm.token}')")
        return 0
    placeholder = nn.Identity()  # settings do not depend on the model; transfer names its surrogate
    placeholder.card = type("Card", (), {"name": "--surrogate (default res20-fp)"})()
    rows = []
    for name in list_attacks():
        norms = attack_norms(name)
        kind = "white-box" if create_attack(name, nn.Identity(), **_attack_extra(name, placeholder)).white_box \
            else "black-box"
        if tm.norm not in norms:
            rows.append([name, kind, ", ".join(norms), f"(not in the {tm.norm} ball)"])
            continue
        atk = create_attack(name, nn.Identity(), norm=tm.norm, **_attack_extra(name, placeholder))
        s = {k: v for k, v in atk.settings().items() if k not in ("eps", "norm")}
        rows.append([name, kind, ", ".join(norms), ", ".join(f"{k}={setting_text(v)}" for k, v in s.items())])
    eps = eps_text(tm.default_eps) if tm.norm == "Linf" else f"{tm.default_eps:g}"
    where = f"{tm.token}: {tm.norm} ball, eps {eps} unless --eps"
    where += "; --threat-model l2 for L2" if tm.norm == "Linf" else ""
    print(tabulate(rows, headers=["attack", "kind", "norms", f"settings ({where})"],
                   tablefmt="github"))
    return 0


def _attack_extra(name: str, placeholder) -> dict:
    return {"surrogate": placeholder} if name == "transfer" else {}


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
        print("qrobench: interrupted; no result was written (a run with --output keeps its finished "
              "batches in a journal: the same command with --resume continues it)", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
