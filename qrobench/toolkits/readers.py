"""The registry of code readers: one per toolkit, each registered by the toolkit's module.

Detection looks at module classes by name, so a reader costs nothing when its toolkit is not
installed. ``formats.py`` picks the reader of a model.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch.nn as nn

from .codes import LayerCodes
from .deployed import DeployedModel, Materialised


@dataclass(frozen=True)
class Reader:
    name: str  # recorded with the weight statistics
    format: str  # the model format it recognises (cards record it)
    detect: Callable[[nn.Module], bool]
    read: Callable[[nn.Module], list[LayerCodes]]
    eligible: str  # which layers it measures, in words
    # float weights outside the codes (biases, unquantized layers), as a number of elements;
    # None: every float parameter and BatchNorm statistic not replaced by codes
    float_elems: Callable[[nn.Module, list[LayerCodes]], int] | None = None


READERS: list[Reader] = []


def register_reader(name: str, format: str, detect: Callable[[nn.Module], bool], eligible: str,
                    float_elems: Callable[[nn.Module, list[LayerCodes]], int] | None = None):
    def wrap(read):
        READERS.append(Reader(name, format, detect, read, eligible, float_elems))
        return read
    return wrap


def unwrap(model: nn.Module) -> nn.Module:
    """The module whose weights are deployed: through qrobench's BPDA and materialising wrappers."""
    while True:
        if isinstance(model, Materialised):
            model = model.reference
        elif isinstance(model, DeployedModel) and isinstance(model.deployed, nn.Module):
            model = model.deployed
        else:
            return model
