"""Models made by quantization toolkits (Brevitas, torch.ao int8, ONNX Runtime), measured and
attacked as deployed: codes read from the toolkit's metadata, integer runtimes attacked
through a differentiable twin (BPDA), slow toolkit forwards materialised and checked."""

from __future__ import annotations

import torch.nn as nn

from ..errors import QrobenchError
from .deployed import DeployedModel, Materialised
from .formats import model_format, read_codes

__all__ = ["DeployedModel", "Materialised", "model_format", "prepare", "read_codes", "runtime_of"]


def runtime_of(model: nn.Module) -> dict:
    """How the model is executed, for its card: the runtime of a deployed model, torch's otherwise."""
    import torch

    if isinstance(model, DeployedModel):
        return dict(model.execution)
    out = {"runtime": "torch", "torch": torch.__version__}
    if isinstance(model, Materialised):
        out["materialised"] = model.how
    return out


def prepare(model: nn.Module, *, twin: nn.Module | None = None) -> nn.Module:
    """The module the engine attacks: a torch.ao int8 model wrapped for BPDA through its twin
    (derived from the graph unless given), a Brevitas model materialised; others unchanged."""
    if isinstance(model, (DeployedModel, Materialised)):
        return model
    fmt = model_format(model)
    if fmt in ("torch-ao", "pt2e"):
        from .torch_int8 import deploy

        return deploy(model, twin)
    if twin is not None:
        raise QrobenchError(f"a twin is only used for models without input gradient (integer kernels, ONNX "
                            f"Runtime); this is a {fmt} model, attacked directly: drop --twin")
    if fmt == "brevitas":
        from .brevitas_models import materialise

        return materialise(model)
    return model
