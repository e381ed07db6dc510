"""Command-line options that several subcommands share, defined once so that ``--device``,
``--eps``, ``--attacks`` and the folder options parse, validate and read the same everywhere."""

from __future__ import annotations

import argparse
import re
import shlex

from .protocol import LEADERBOARD_EPS, eps_arg, eps_list_arg, eps_text

_DEVICE = re.compile(r"^(auto|cpu|cuda(:\d+)?)$")


def device_arg(text: str) -> str:
    if not _DEVICE.match(text.strip()):
        raise argparse.ArgumentTypeError(f"--device must be auto, cpu or cuda[:i], got {text!r}")
    return text.strip()


def attack_list_arg(text: str) -> list[str]:
    """Comma-separated attack names; the evaluation config checks them (engine/config.py)."""
    names = [a.strip() for a in text.split(",") if a.strip()]
    if not names:
        raise argparse.ArgumentTypeError("--attacks needs at least one attack name")
    return names


def add_device(p, default: str = "auto") -> None:
    p.add_argument("--device", type=device_arg, default=default,
                   help=f"auto, cpu or cuda[:i] (default {default}); on a GPU the run is full fp32")


def add_eps(p, *, curve: bool = False, default: float | None = LEADERBOARD_EPS, help_default: str | None = None):
    what = help_default or f"default {eps_text(LEADERBOARD_EPS)}"
    if curve:
        p.add_argument("--eps", type=eps_list_arg, default=None if default is None else [default],
                       help=f"the threat model's budget ε, e.g. 8/255 ({what}); a list 2/255,4/255,8/255 runs once per ε "
                            "and writes one result file per ε (an ε curve)")
    else:
        p.add_argument("--eps", type=eps_arg, default=default, help=f"budget ε, e.g. 8/255 for L∞ ({what})")


def add_axes(p) -> None:
    """The threat model and the data set of an evaluation (the config checks both)."""
    from .data.registry import list_datasets
    from .protocol import DEFAULT_DATASET, DEFAULT_THREAT_MODEL, THREAT_MODELS

    measured = [t for t, m in THREAT_MODELS.items() if m.implemented]
    p.add_argument("--threat-model", default=DEFAULT_THREAT_MODEL, metavar="NAME",
                   help=f"what the adversary may change: {', '.join(measured)} (default {DEFAULT_THREAT_MODEL}); "
                        "--eps is its budget")
    p.add_argument("--dataset", default=DEFAULT_DATASET, metavar="NAME",
                   help=f"test set: {', '.join(list_datasets())} (default {DEFAULT_DATASET})")


def add_attacks(p, default: list[str] | None, help_default: str) -> None:
    p.add_argument("--attacks", type=attack_list_arg, default=default,
                   help=f"comma-separated attack names (see 'qrobench attacks'); {help_default}")


def add_data_dir(p) -> None:
    p.add_argument("--data-dir", default=None, help="CIFAR-10 folder (else $QROBENCH_DATA, download, bundled)")


def add_zoo_dir(p, what: str = "zoo folder") -> None:
    p.add_argument("--zoo-dir", default=None, help=f"{what} (else $QROBENCH_ZOO, else model_zoo/)")


def add_batch_size(p) -> None:
    p.add_argument("--batch-size", type=int, default=250, help="points per attack batch (default 250)")


def add_quiet(p) -> None:
    p.add_argument("--quiet", action="store_true", help="no progress bars")


def command_line(argv) -> str:
    """The command as a user would retype it, stored in every file a command writes."""
    return "qrobench " + " ".join(shlex.quote(a) for a in argv)


def add_twin(p) -> None:
    p.add_argument("--twin", default=None, metavar="SPEC",
                   help="differentiable twin for a model without input gradient (torch.ao int8, ONNX Runtime): "
                        "a zoo model, package.module:factory, or an .onnx file; default: derived from the model")


def corruption_list_arg(text: str) -> list[str]:
    """Comma-separated CIFAR-10-C corruption names (threats/corruptions.py checks them)."""
    names = [c.strip() for c in text.split(",") if c.strip()]
    if not names:
        raise argparse.ArgumentTypeError("--corruptions needs at least one corruption name, e.g. gaussian_noise")
    return names


def add_corruptions(p) -> None:
    """--threat-model corruptions: which corruptions, and from which data."""
    p.add_argument("--corruptions", type=corruption_list_arg, default=None, metavar="A,B",
                   help="--threat-model corruptions: comma-separated CIFAR-10-C corruptions (default the 15 of "
                        "RobustBench's track; 'qrobench attacks --threat-model corruptions' lists them)")
    p.add_argument("--corruption-source", choices=("auto", "official", "generated"), default=None,
                   help="--threat-model corruptions: the official CIFAR-10-C arrays, the generated "
                        "CIFAR-10-C-style set, or auto (official where the folder is present; default)")
