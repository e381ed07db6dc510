"""``qrobench train``: train a zoo model by name with a named recipe, resumable, then export it."""

from __future__ import annotations

import time
from pathlib import Path

from .. import cli_options as opts
from ..errors import QrobenchError


def add_train_parser(sub) -> None:
    t = sub.add_parser("train", help="train a zoo model with a named recipe and export it")
    t.add_argument("name", nargs="?", help="zoo name <arch>-<precision>[-<recipe>], e.g. enres20-tnn")
    t.add_argument("--list", action="store_true", help="list the recipes and exit")
    t.add_argument("--recipe", default="budget-nfgsm", help="recipe name (see --list)")
    t.add_argument("--epochs", type=int, default=None, help="override the recipe's epochs")
    t.add_argument("--init-from", default=None, help="zoo model whose weights start the run (fine-tuning)")
    t.add_argument("--tradeoff", default=None,
                   help="trade-off loss weights 'w_adv,w_nat' (default 8,1 for *-tradeoff names)")
    t.add_argument("--avg-bits", type=float, default=None,
                   help="<arch>-mixed-ft only: plan per-layer bits with qrobench-LGMP on the --init-from float "
                        "model at this average, then fine-tune that plan")
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--val-n", type=int, default=1000, help="held-out tail of the training set (selection)")
    t.add_argument("--train-n", type=int, default=None, help="train on the first N images only")
    opts.add_data_dir(t)
    opts.add_zoo_dir(t, "where the card and checkpoint are exported")
    t.add_argument("--work-dir", default="runs/train", help="checkpoints and logs (one folder per model)")
    t.add_argument("--resume", action="store_true", help="continue from the last epoch checkpoint")
    t.add_argument("--stop-after-epoch", type=int, default=None,
                   help="stop after this epoch (resume later) without exporting")
    t.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    opts.add_device(t, default="cpu")
    opts.add_quiet(t)
    t.set_defaults(func=cmd_train)


def cmd_train(args) -> int:
    import torch
    from tabulate import tabulate

    from ..data.cifar10 import load_cifar10_train
    from ..zoo.naming import parse_zoo_name
    from ..zoo.store import Zoo, default_zoo_dir
    from .export import export_to_zoo
    from .recipes import RECIPES, get_recipe
    from .trainer import TrainConfig, finished, selection_metric, train

    if args.list:
        print(tabulate([[r.name, r.adversary, r.epochs, r.description] for r in RECIPES.values()],
                       headers=["recipe", "adversary", "epochs", "description"], tablefmt="github"))
        return 0
    if not args.name:
        raise QrobenchError("qrobench train needs a model name (e.g. res20-fp) or --list")
    zn = parse_zoo_name(args.name)
    recipe = get_recipe(args.recipe)
    if zn.loss == "natural" and recipe.adversary != "none":
        raise QrobenchError(f"{args.name} is a natural model; use --recipe natural")
    if args.epochs is not None:
        if args.epochs <= 0:
            raise QrobenchError("--epochs must be positive")
        recipe = recipe.with_(epochs=args.epochs, br_hard_epoch=min(recipe.br_hard_epoch, args.epochs - 1))
    tradeoff = None
    if args.tradeoff or zn.loss == "tradeoff":
        try:
            w = [float(v) for v in (args.tradeoff or "8,1").split(",")]
            assert len(w) == 2
        except (ValueError, AssertionError):
            raise QrobenchError(f"--tradeoff must be two numbers 'w_adv,w_nat', got {args.tradeoff!r}") from None
        tradeoff = (w[0], w[1])
    if args.threads:
        torch.set_num_threads(args.threads)
    if zn.precision == "mixed" and (args.avg_bits is None or not args.init_from or not zn.fine_tuned):
        raise QrobenchError(f"{args.name}: a mixed-precision model is trained as <arch>-mixed-ft with --avg-bits B "
                            "--init-from <float model> (the LGMP plan of that model, fine-tuned); "
                            "for a post-training plan use qrobench quantize")
    if args.avg_bits is not None and zn.precision != "mixed":
        raise QrobenchError(f"--avg-bits plans mixed precision; {args.name} is {zn.precision} "
                            "(name the model <arch>-mixed-ft)")
    zoo_dir = Path(args.zoo_dir) if args.zoo_dir else default_zoo_dir()
    init_state, plan, arch_args = None, None, dict(zn.arch_args)
    if args.init_from:
        init_model, init_card = Zoo(zoo_dir).load(args.init_from)
        init_state = {k: v for k, v in init_model.state_dict().items()}
        if zn.precision == "mixed":
            plan = _lgmp_plan(init_model, init_card, args.avg_bits)
            arch_args["layer_bits"] = plan["layer_bits"]
    data = load_cifar10_train(args.data_dir)
    cfg = TrainConfig(name=args.name, architecture=zn.architecture, arch_args=arch_args, recipe=recipe,
                      out_dir=Path(args.work_dir) / args.name, seed=args.seed, val_n=args.val_n,
                      train_n=args.train_n, tradeoff=tradeoff, init_state=init_state,
                      init_from=args.init_from, device=args.device, progress=not args.quiet,
                      stop_after_epoch=args.stop_after_epoch)
    t0 = time.time()
    model = train(cfg, data, resume=args.resume)
    if not finished(cfg):
        print(f"stopped after epoch {args.stop_after_epoch}; continue with --resume")
        return 0
    cmd = [f"qrobench train {args.name} --recipe {args.recipe}"]
    if args.epochs is not None:
        cmd.append(f"--epochs {args.epochs}")
    if args.init_from:
        cmd.append(f"--init-from {args.init_from}")
    if plan is not None:
        cmd.append(f"--avg-bits {args.avg_bits:g}")
    if tradeoff:
        cmd.append(f"--tradeoff {tradeoff[0]:g},{tradeoff[1]:g}")
    if args.seed:
        cmd.append(f"--seed {args.seed}")
    if args.train_n:
        cmd.append(f"--train-n {args.train_n}")
    log = (cfg.out_dir / "log.csv").read_text().splitlines()
    training = {
        "command": " ".join(cmd),
        "recipe": recipe.as_dict(),
        "loss": ("trade-off: {:g}*CE(adv) + {:g}*CE(clean)".format(*tradeoff)) if tradeoff else
                ("CE(clean)" if recipe.adversary == "none" else "CE(adv)"),
        "init_from": args.init_from,
        "seed": args.seed,
        "selection": f"best {selection_metric(recipe)} accuracy on the held-out {_held_out_text(args, len(data))} "
                     "(not the test set)",
        "train_images": len(data) - args.val_n if args.train_n is None else args.train_n,
        "data_source": data.source,
        "wall_time_s_this_invocation": round(time.time() - t0, 1),
        "train_time_s": round(sum(float(row.split(",")[8]) for row in log[1:]), 1),
        "epoch_log": log,
        "hardware": f"{torch.get_num_threads()} CPU threads" if args.device == "cpu" else args.device,
    }
    if plan is not None:
        training["plan"] = plan
    run = f"{recipe.epochs} epochs" + (f", hard phase from epoch {recipe.br_hard_epoch + 1}"
                                       if zn.precision != "fp" else "")
    if args.train_n:
        run += f", first {args.train_n} training images"
    summary = recipe.description + f" [run: {run}]" + (f"; trade-off loss {tradeoff[0]:g}/{tradeoff[1]:g}" if tradeoff else "")
    if args.init_from:
        summary += f"; initialised from {args.init_from}"
    if plan is not None:
        summary = f"{plan['method']}, average {plan['avg_bits']:.2f} bits (budget {args.avg_bits:g}), fine-tuned: " + summary
    card = export_to_zoo(model, args.name, zn.architecture, arch_args, zn.precision, summary,
                         training, zoo_dir)
    print(f"exported {card.name} to {card.checkpoint_path()} (sha256 {card.sha256[:12]}…)")
    return 0


def _lgmp_plan(float_model, float_card, avg_bits: float, option: str = "--init-from") -> dict:
    """The one LGMP plan of a float zoo model at a budget: ``quantize`` exports it as it is and
    ``train <arch>-mixed-ft`` fine-tunes it, so the two differ only in the training."""
    from ..quant.lipschitz import CANDIDATE_BITS, plan_mixed_precision

    if not min(CANDIDATE_BITS) <= avg_bits <= max(CANDIDATE_BITS):
        raise QrobenchError(f"--avg-bits must lie in [{min(CANDIDATE_BITS)}, {max(CANDIDATE_BITS)}], got {avg_bits:g}")
    if float_card.precision != "fp":
        raise QrobenchError(f"{option} {float_card.name} is {float_card.precision}; LGMP starts from a float model")
    return plan_mixed_precision(float_model, avg_bits)


def _held_out_text(args, n_images: int) -> str:
    """Which training images selected the checkpoint (the trainer holds out the images right after
    the ones it trains on)."""
    if args.train_n is None or args.train_n + args.val_n >= n_images:
        return f"last {args.val_n} training images"
    return f"training images {args.train_n + 1}-{args.train_n + args.val_n} (right after the {args.train_n} trained on)"


def add_quantize_parser(sub) -> None:
    q = sub.add_parser("quantize", help="post-training Lipschitz-guided mixed precision (qrobench-LGMP)")
    q.add_argument("name", help="zoo name for the result, e.g. res20-mixed")
    q.add_argument("--from", dest="source", required=True, help="float zoo model to quantize, e.g. res20-fp")
    q.add_argument("--avg-bits", type=float, default=4.0, help="parameter-weighted average bits (default 4)")
    opts.add_zoo_dir(q)
    q.set_defaults(func=cmd_quantize)


def cmd_quantize(args) -> int:
    import json

    from ..models.registry import create_model
    from ..zoo.naming import parse_zoo_name
    from ..zoo.store import Zoo, default_zoo_dir
    from .export import export_to_zoo

    zn = parse_zoo_name(args.name)
    if zn.precision != "mixed":
        raise QrobenchError(f"{args.name}: quantize writes mixed-precision models; name it <arch>-mixed")
    zoo_dir = Path(args.zoo_dir) if args.zoo_dir else default_zoo_dir()
    src, src_card = Zoo(zoo_dir).load(args.source)
    plan = _lgmp_plan(src, src_card, args.avg_bits, option="--from")
    arch_args = {**src_card.arch_args, "precision": "mixed", "layer_bits": plan["layer_bits"]}
    model = create_model(src_card.architecture, **arch_args)
    model.load_state_dict(src.state_dict())
    training = {
        "command": f"qrobench quantize {args.name} --from {args.source} --avg-bits {args.avg_bits:g}",
        "init_from": args.source,
        "method": plan["method"],
        "plan": plan,
        "train_time_s": 0.0,
    }
    summary = (f"{plan['method']}: post-training, average {plan['avg_bits']:.2f} bits "
               f"(budget {args.avg_bits:g}) applied to {args.source} ({src_card.recipe})")
    card = export_to_zoo(model, args.name, src_card.architecture, arch_args, "mixed", summary, training, zoo_dir)
    print(json.dumps(plan["layer_bits"]))
    print(f"exported {card.name} (average {plan['avg_bits']:.2f} bits) to {card.checkpoint_path()}")
    return 0
