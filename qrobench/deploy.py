"""``qrobench deploy``: a zoo model made into a toolkit's deployed model, as a zoo entry.

The entries that show whether a deployed quantized network keeps the robustness of its
float or fake-quant twin (issue #25): torch.ao FX post-training int8 (x86 kernels), ONNX
Runtime static int8 (QDQ, per-channel), and a Brevitas 4-bit QAT fine-tune with the
``res20-4bit`` recipe's budget. Calibration uses training images, never test points.
"""

from __future__ import annotations

import time
from pathlib import Path

from . import cli_options as opts
from .errors import QrobenchError

TOOLKITS = ("torch-ao", "onnx", "brevitas")
FACTORY = "factory:qrobench.toolkits.zoo_models:"


def add_deploy_parser(sub) -> None:
    p = sub.add_parser("deploy", help="make a zoo model into a toolkit's deployed model (torch.ao int8, "
                                      "ONNX Runtime int8, Brevitas QAT) and export it to the zoo")
    p.add_argument("name", help="zoo name of the new entry, e.g. res20-int8-torchao")
    p.add_argument("--from", dest="source", required=True, help="float zoo model to start from, e.g. res20-fp")
    p.add_argument("--toolkit", required=True, choices=TOOLKITS)
    p.add_argument("--calibration-n", type=int, default=1000,
                   help="post-training calibration images, the first N training images (default 1000)")
    p.add_argument("--reduce-range", action="store_true",
                   help="onnx: 7-bit weight codes (onnxruntime's reduce_range), whose int8 kernels are exact on x86 "
                        "CPUs without VNNI; by default 8-bit, which those CPUs' kernels can saturate "
                        "(docs/protocol.md §8.8)")
    p.add_argument("--recipe", default="budget-nfgsm-ft", help="brevitas: the fine-tuning recipe")
    p.add_argument("--epochs", type=int, default=4, help="brevitas: epochs (default 4, res20-4bit's budget)")
    p.add_argument("--bits", type=int, default=4, help="brevitas: weight bits (default 4)")
    p.add_argument("--work-dir", default="runs/train", help="brevitas: checkpoints and logs")
    p.add_argument("--resume", action="store_true", help="brevitas: continue from the last epoch")
    p.add_argument("--stop-after-epoch", type=int, default=None, help="brevitas: stop after this epoch")
    p.add_argument("--train-n", type=int, default=None, help="brevitas: train on the first N images only")
    p.add_argument("--val-n", type=int, default=1000, help="brevitas: held-out tail for selection (default 1000)")
    opts.add_data_dir(p)
    opts.add_zoo_dir(p, "where the card and model are exported")
    opts.add_quiet(p)
    p.set_defaults(func=cmd_deploy)


def cmd_deploy(args) -> int:

    from .data.cifar10 import load_cifar10_train
    from .zoo.store import Zoo, default_zoo_dir

    zoo_dir = Path(args.zoo_dir) if args.zoo_dir else default_zoo_dir()
    zoo = Zoo(zoo_dir)
    src, src_card = zoo.load(args.source)
    if src_card.precision != "fp" or src_card.format != "torch" or src_card.ensemble != 1:
        raise QrobenchError(f"--from {args.source} must be a float, single-member qrobench model")
    if (zoo_dir / f"{args.name}.json").exists() and not args.resume:
        raise QrobenchError(f"{zoo_dir / args.name}.json exists; remove it or choose another name")
    data = load_cifar10_train(args.data_dir)
    command = opts.command_line(args.argv)
    t0 = time.time()
    calib = data.x[:args.calibration_n]
    base = {"name": args.name, "arch_args": {"architecture": src_card.architecture, **src_card.arch_args},
            "ensemble": 1, "noise_coef": 0.0, "dataset": "cifar10", "license": "MIT",
            "reference": src_card.reference}
    if args.toolkit == "torch-ao":
        from .toolkits.zoo_models import preact_resnet_int8

        model = preact_resnet_int8(src_card.architecture, calibration=calib, float_state=src.state_dict(),
                                   **src_card.arch_args)
        card = _export(model, zoo_dir, base, FACTORY + "preact_resnet_int8", "torch-ao", src_card,
                       "torch.ao FX post-training int8, x86 qconfig: per-channel symmetric int8 weights, "
                       "per-tensor uint8 activations (MinMax/histogram observers), every conv and linear",
                       f"post-training int8 (torch.ao FX, x86), calibrated on the first {len(calib)} training "
                       f"images; from {args.source} ({src_card.recipe})",
                       {"command": command, "init_from": args.source, "calibration_images": len(calib),
                        "train_time_s": round(time.time() - t0, 1)})
    elif args.toolkit == "onnx":
        card = _export_onnx(src, src_card, calib, zoo_dir, base, command, args, t0)
    else:
        card = _train_brevitas(src, src_card, data, zoo_dir, base, command, args)
        if card is None:
            return 0
    print(f"exported {card.name} ({card.format}) to {card.checkpoint_path()} (sha256 {card.sha256[:12]}…)")
    return 0


def _export(model, zoo_dir, base, architecture, fmt, src_card, quantizer, recipe, training):
    from .quant.measure import measure_weights
    from .toolkits import prepare, runtime_of
    from .zoo.card import ModelCard
    from .zoo.checkpoint import save_deployed

    file = f"{base['name']}.safetensors"
    sha = save_deployed(model, zoo_dir / file, metadata={"name": base["name"], "format": fmt})
    stats = measure_weights(model)
    card = ModelCard(**{k: v for k, v in base.items() if k != "arch_args"}, architecture=architecture,
                     arch_args=base["arch_args"], precision=stats.precision, quantizer=quantizer, recipe=recipe,
                     sha256=sha, file=file, training=training, format=fmt, runtime=runtime_of(prepare(model)))
    card.write(zoo_dir / f"{base['name']}.json")
    return card


def _export_onnx(src, src_card, calib, zoo_dir, base, command, args, t0):
    import tempfile
    import warnings

    import torch

    from .toolkits.onnx_models import load_onnx
    from .toolkits.zoo_models import float_twin
    from .zoo.card import ModelCard
    from .zoo.checkpoint import file_sha256

    try:
        from onnxruntime.quantization import (
            CalibrationDataReader,
            QuantFormat,
            QuantType,
            quantize_static,
        )
    except ImportError as e:
        raise QrobenchError("the onnx toolkit needs onnx and onnxruntime: pip install 'qrobench[onnx]'") from e
    model = float_twin(src_card.architecture, **src_card.arch_args)
    model.load_state_dict(src.state_dict())
    model.eval()

    class Images(CalibrationDataReader):
        def __init__(self):
            self.it = iter(range(0, len(calib), 100))

        def get_next(self):
            i = next(self.it, None)
            return None if i is None else {"x": calib[i:i + 100].numpy()}

    out = zoo_dir / f"{args.name}.onnx"
    with tempfile.TemporaryDirectory() as tmp:
        fp = Path(tmp) / "float.onnx"
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(model, (calib[:2],), str(fp), dynamo=False, opset_version=17, input_names=["x"],
                              output_names=["logits"], dynamic_axes={"x": {0: "n"}, "logits": {0: "n"}})
        quantize_static(str(fp), str(Path(tmp) / "int8.onnx"), Images(), quant_format=QuantFormat.QDQ,
                        per_channel=True, weight_type=QuantType.QInt8, activation_type=QuantType.QUInt8,
                        reduce_range=bool(getattr(args, "reduce_range", False)))
        Path(tmp, "int8.onnx").replace(out)
    deployed = load_onnx(out)
    from .quant.measure import measure_weights

    stats = measure_weights(deployed)
    card = ModelCard(**{k: v for k, v in base.items() if k != "arch_args"}, architecture=f"onnx:{out.name}",
                     arch_args={}, precision=stats.precision,
                     quantizer="onnxruntime quantize_static, QDQ: per-channel int8 weights"
                               + (" in 7 bits (reduce_range)" if getattr(args, "reduce_range", False) else "")
                               + ", uint8 activations (MinMax calibration), every conv and linear",
                     recipe=f"post-training int8 (ONNX Runtime static, QDQ, opset 17), calibrated on the first "
                            f"{len(calib)} training images; from {args.source} ({src_card.recipe})",
                     sha256=file_sha256(out), file=out.name,
                     training={"command": command, "init_from": args.source, "calibration_images": len(calib),
                               "train_time_s": round(time.time() - t0, 1)},
                     format="onnx", runtime=deployed.execution)
    card.write(zoo_dir / f"{args.name}.json")
    return card


def _train_brevitas(src, src_card, data, zoo_dir, base, command, args):
    import torch

    from .toolkits.zoo_models import preact_resnet_brevitas
    from .train.recipes import get_recipe
    from .train.trainer import TrainConfig, finished, train

    recipe = get_recipe(args.recipe)
    recipe = recipe.with_(epochs=args.epochs, br_hard_epoch=min(recipe.br_hard_epoch, args.epochs - 1))

    def build():
        m = preact_resnet_brevitas(src_card.architecture, weight_bits=args.bits, **src_card.arch_args)
        m.load_state_dict(src.state_dict())  # the float weights start the QAT
        return m

    cfg = TrainConfig(name=args.name, architecture=FACTORY + "preact_resnet_brevitas", arch_args={},
                      recipe=recipe, out_dir=Path(args.work_dir) / args.name, init_from=args.source,
                      progress=not args.quiet, stop_after_epoch=args.stop_after_epoch, build=build,
                      train_n=args.train_n, val_n=args.val_n)
    t0 = time.time()
    model = train(cfg, data, resume=args.resume)
    if not finished(cfg):
        print(f"stopped after epoch {args.stop_after_epoch}; continue with --resume")
        return None
    log = (cfg.out_dir / "log.csv").read_text().splitlines()
    training = {"command": command, "recipe": recipe.as_dict(), "loss": "CE(adv)", "init_from": args.source,
                "seed": 0, "selection": f"best PGD-10 accuracy on {cfg.val_n} held-out training images "
                                        "(not the test set)",
                "train_images": args.train_n or len(data) - cfg.val_n, "data_source": data.source,
                "wall_time_s_this_invocation": round(time.time() - t0, 1),
                "train_time_s": round(sum(float(row.split(",")[8]) for row in log[1:]), 1),
                "epoch_log": log, "hardware": f"{torch.get_num_threads()} CPU threads"}
    base = {**base, "arch_args": {"architecture": src_card.architecture, "weight_bits": args.bits,
                                  **src_card.arch_args}}
    return _export(model, zoo_dir, base, FACTORY + "preact_resnet_brevitas", "brevitas", src_card,
                   f"Brevitas QuantConv2d, {args.bits}-bit per-output-channel weights (max-abs statistics "
                   "scale, straight-through QAT) on the stem and 3x3 convs; shortcuts/FC/BN in fp32",
                   f"Brevitas QAT fine-tune with N-FGSM: {args.recipe}'s optimiser and schedule (SGD Nesterov, "
                   f"one-cycle LR peak {recipe.lr:g}, batch {recipe.batch_size}, wd {recipe.weight_decay:g}), "
                   f"straight-through quantized weights throughout (no BinaryRelax phases) [run: {recipe.epochs} "
                   f"epochs]; initialised from {args.source}", training)
