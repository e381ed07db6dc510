"""Zoo entries whose architecture is a user's own ``nn.Module`` factory (``package.module:fn``).

A submitted model need not be a registered qrobench architecture; its card then records
``architecture = "factory:package.module:fn"`` and the keyword arguments in ``arch_args``.
The package must be importable wherever the model is loaded (it runs that package's code,
as any ``nn.Module`` does).
"""

from __future__ import annotations

import importlib
import re

import torch.nn as nn

from ..errors import QrobenchError
from .card import ModelCard

FACTORY_PREFIX = "factory:"
_PATH = re.compile(r"^[A-Za-z_][\w]*(\.[A-Za-z_][\w]*)*:[A-Za-z_][\w]*(\.[A-Za-z_][\w]*)*$")


def build_from_factory(path: str, kwargs: dict | None = None) -> nn.Module:
    """Import ``package.module:factory``, call it (with ``kwargs``) and check it gave a module."""
    if not _PATH.match(path):
        raise QrobenchError(f"--factory must look like package.module:factory, got {path!r}")
    mod_name, attr = path.split(":")
    try:
        obj = importlib.import_module(mod_name)
    except ImportError as e:
        raise QrobenchError(f"--factory {path}: cannot import {mod_name!r} ({e}); install the package "
                            "or add its folder to PYTHONPATH") from e
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise QrobenchError(f"--factory {path}: {mod_name!r} has no attribute {attr!r}")
        obj = getattr(obj, part)
    if not callable(obj):
        raise QrobenchError(f"--factory {path} is not callable; point it at a function or class")
    try:
        model = obj(**(kwargs or {}))
    except TypeError as e:
        raise QrobenchError(f"--factory {path} could not be called with arguments {kwargs or {}} ({e}); "
                            "pass its keyword arguments with --arch-args JSON") from e
    if not isinstance(model, nn.Module):
        raise QrobenchError(f"--factory {path} returned a {type(model).__name__}, not a torch.nn.Module")
    return model


def is_factory_card(card: ModelCard) -> bool:
    return card.architecture.startswith(FACTORY_PREFIX)
