"""Architecture registry, timm style: one decorated factory per architecture, and
``create_model(name, **kwargs)`` whose keywords are that architecture's own config fields.

Each architecture declares a config dataclass; its fields are the only keyword arguments
``create_model`` accepts for it, so a model card's ``arch_args`` are checked against the
architecture that will read them, and a typo fails with the valid names instead of being
ignored.

Example (a new architecture is one file, imported from ``qrobench/models/__init__.py``)::

    @dataclass
    class WideConfig:
        depth: int = 16
        width: int = 4
        precision: str = "fp"

    @register_model("wrn16_4", config=WideConfig)
    def wrn16_4(cfg: WideConfig) -> nn.Module: ...

    create_model("wrn16_4", width=8)   # WideConfig(depth=16, width=8, precision="fp")
    create_model("wrn16_4", widht=8)   # QrobenchError: ... valid: depth, precision, width
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass

import torch.nn as nn

from ..registry import Registry
from .config import ArchConfig, config_from_kwargs


@dataclass(frozen=True)
class Architecture:
    """A registered architecture: its factory, its config dataclass, and the defaults that
    distinguish this name from others built by the same factory (``preact_resnet56`` is
    ``preact_resnet`` with depth 56)."""

    name: str
    build: Callable[..., nn.Module]
    config: type
    defaults: dict

    def arguments(self) -> dict:
        """Every keyword this architecture accepts, with the value it takes when not given."""
        cfg = self.make_config({})
        return {f.name: getattr(cfg, f.name) for f in dataclasses.fields(cfg)}

    def make_config(self, kwargs: dict):
        return config_from_kwargs(self.config, {**self.defaults, **kwargs}, self.name)


ARCHITECTURES: Registry[Architecture] = Registry("architecture")


def register_model(name: str, config: type = ArchConfig, **defaults):
    """Register ``fn(cfg: config) -> nn.Module`` under ``name``, with ``defaults`` for some of
    the config's fields (checked now, so a misspelt default fails at import, not at use)."""
    if not dataclasses.is_dataclass(config):
        raise TypeError(f"architecture {name!r}: config must be a dataclass, got {config!r}")

    def deco(fn):
        arch = Architecture(name, fn, config, dict(defaults))
        arch.make_config({})
        ARCHITECTURES.register(name, arch)
        return fn

    return deco


def list_models() -> list[str]:
    return ARCHITECTURES.names()


def model_arguments(name: str) -> dict:
    """The keyword arguments ``create_model(name, ...)`` accepts, with their defaults."""
    return ARCHITECTURES.get(name).arguments()


def create_model(name: str, **kwargs) -> nn.Module:
    arch = ARCHITECTURES.get(name)
    cfg = arch.make_config(kwargs)
    model = arch.build(cfg)
    model.arch_name = name
    model.arch_config = cfg
    return model


__all__ = ["ARCHITECTURES", "ArchConfig", "Architecture", "create_model", "list_models",
           "model_arguments", "register_model"]
