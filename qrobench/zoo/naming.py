"""Zoo names ``<arch>-<precision>[-<recipe>]`` (docs/protocol.md §3) and what they imply."""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import QrobenchError
from ..protocol import PRECISION_TOKENS

ARCHES = {
    "res20": ("preact_resnet20", {}),
    "res56": ("preact_resnet56", {}),
    "enres20": ("enresnet20", {}),  # En2ResNet20, noise 0.1
    "en1res20": ("preact_resnet20", {"ensemble": 1, "noise_coef": 0.1}),
    "en5res20": ("enresnet20", {"ensemble": 5}),
}
RECIPE_TOKENS = ("tradeoff", "natural", "ft")


@dataclass
class ZooName:
    name: str
    arch_key: str
    architecture: str
    arch_args: dict
    precision: str
    loss: str  # adversarial | tradeoff | natural
    fine_tuned: bool = False  # "-ft": a post-training plan (mixed) fine-tuned with BinaryRelax


def parse_zoo_name(name: str) -> ZooName:
    parts = name.split("-")
    if len(parts) not in (2, 3) or parts[0] not in ARCHES or parts[1] not in PRECISION_TOKENS \
            or (len(parts) == 3 and parts[2] not in RECIPE_TOKENS):
        raise QrobenchError(
            f"model name {name!r} is not <arch>-<precision>[-<recipe>] with arch in {sorted(ARCHES)}, "
            f"precision in {PRECISION_TOKENS}, recipe in {RECIPE_TOKENS} (e.g. enres20-tnn-tradeoff)"
        )
    arch, args = ARCHES[parts[0]]
    args = dict(args)
    if parts[1] != "fp":
        args["precision"] = parts[1]
    recipe = parts[2] if len(parts) == 3 else None
    if recipe == "ft" and parts[1] != "mixed":
        raise QrobenchError(f"model name {name!r}: the -ft suffix names a fine-tuned mixed-precision plan "
                            f"(e.g. res20-mixed-ft); {parts[1]} models are fine-tuned without a suffix")
    loss = "adversarial" if recipe in (None, "ft") else recipe
    return ZooName(name, parts[0], arch, args, parts[1], loss, fine_tuned=recipe == "ft")
