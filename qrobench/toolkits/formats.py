"""Which toolkit made a model, and its deployed codes: the first registered reader that
recognises it. A model no reader recognises is measured by ``quant/measure.py``'s own path
(qrobench layers, or the distinct-value inference for plain float modules).
"""

from __future__ import annotations

import torch.nn as nn

from . import brevitas_models, onnx_models, torch_int8  # noqa: F401  (each registers its reader)
from .codes import LayerCodes
from .readers import READERS, Reader, unwrap


def find_reader(model: nn.Module) -> Reader | None:
    model = unwrap(model)
    for r in READERS:
        if r.detect(model):
            return r
    return None


def read_codes(model: nn.Module) -> tuple[Reader, list[LayerCodes]] | None:
    """(reader, codes of every quantized layer) for a toolkit model, None for any other."""
    r = find_reader(model)
    if r is None:
        return None
    return r, r.read(unwrap(model))


def model_format(model: nn.Module) -> str:
    """``brevitas``, ``torch-ao``, ``pt2e``, ``onnx`` for toolkit models, else ``torch``."""
    r = find_reader(model)
    return r.format if r is not None else "torch"

