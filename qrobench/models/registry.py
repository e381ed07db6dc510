"""Architecture registry: a new architecture is one file with one decorated factory."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field

import torch.nn as nn

from ..errors import QrobenchError, UnknownNameError


@dataclass
class ArchConfig:
    """Everything needed to rebuild an architecture; stored verbatim in model cards."""

    depth: int = 20
    num_classes: int = 10
    ensemble: int = 1  # k independent members whose logits are averaged
    noise_coef: float = 0.0  # Feynman-Kac noise after each residual addition (EnResNet)
    precision: str = "fp"  # fp | 4bit | tnn | bnn | mixed
    ternary_convention: str = "ref"
    layer_bits: dict[str, int] = field(default_factory=dict)  # per-layer bits when "mixed"

    @classmethod
    def from_dict(cls, d: dict) -> ArchConfig:
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - names
        if unknown:
            raise QrobenchError(
                f"unknown architecture argument(s) {sorted(unknown)}; valid: {sorted(names)}"
            )
        return cls(**d)

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)


_MODELS: dict[str, tuple[Callable[[ArchConfig], nn.Module], dict]] = {}


def register_model(name: str, **defaults):
    """Register ``fn(cfg: ArchConfig) -> nn.Module`` under ``name`` with default arguments."""

    def deco(fn):
        if name in _MODELS:
            raise ValueError(f"architecture {name!r} is already registered")
        _MODELS[name] = (fn, defaults)
        return fn

    return deco


def list_models() -> list[str]:
    return sorted(_MODELS)


def create_model(name: str, **kwargs) -> nn.Module:
    if name not in _MODELS:
        raise UnknownNameError("architecture", name, _MODELS)
    fn, defaults = _MODELS[name]
    cfg = ArchConfig.from_dict({**defaults, **kwargs})
    model = fn(cfg)
    model.arch_name = name
    model.arch_config = cfg
    return model
