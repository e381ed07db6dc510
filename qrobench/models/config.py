"""The PreAct ResNet family's keyword arguments (ResNet, EnResNet), apart from the registry.

It lives in its own module so that the registry can default to it and the architecture
modules can use it without importing each other.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from ..errors import QrobenchError


def config_from_kwargs(config: type, kwargs: dict, arch: str | None = None):
    """``config(**kwargs)``, refusing unknown keywords with the list of valid ones, because a
    misspelt argument would otherwise be silently dropped from a model card or raise a
    bare TypeError far from the command that caused it."""
    names = [f.name for f in dataclasses.fields(config)]
    unknown = sorted(set(kwargs) - set(names))
    if unknown:
        raise QrobenchError(
            f"unknown architecture argument(s) {unknown}{f' for {arch!r}' if arch else ''}; "
            f"valid: {', '.join(sorted(names))}"
        )
    return config(**kwargs)


@dataclass
class ArchConfig:
    """Everything needed to rebuild a PreAct ResNet or EnResNet; stored verbatim in model cards."""

    depth: int = 20
    num_classes: int = 10
    ensemble: int = 1  # k independent members whose logits are averaged
    noise_coef: float = 0.0  # Feynman-Kac noise after each residual addition (EnResNet)
    precision: str = "fp"  # fp | 4bit | tnn | bnn | mixed
    ternary_convention: str = "ref"
    layer_bits: dict[str, int] = field(default_factory=dict)  # per-layer bits when "mixed"

    @classmethod
    def from_dict(cls, d: dict) -> ArchConfig:
        return config_from_kwargs(cls, d)

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)
