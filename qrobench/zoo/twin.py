"""The differentiable twin a user names for a model without input gradient (``--twin``).

A zoo model's name, a ``package.module:factory`` returning a trained float module, or an
ONNX file (its QDQ graph as fake-quant). Only the twin's gradients are used (BPDA); every
decision stays with the deployed model, and the record says how far the two agree.
"""

from __future__ import annotations

from pathlib import Path

import torch.nn as nn

from ..errors import QrobenchError
from .factory import build_from_factory
from .store import Zoo


def resolve_twin(spec: str | None, zoo_dir=None) -> tuple[nn.Module, str] | tuple[None, None]:
    """(twin module, what it is) for ``--twin``; (None, None) when not given."""
    if spec is None:
        return None, None
    if spec.endswith(".onnx"):
        from ..toolkits.onnx_models import OnnxRuntimeModule, derive_twin

        if not Path(spec).is_file():
            raise QrobenchError(f"--twin {spec}: no such ONNX file")
        twin = derive_twin(OnnxRuntimeModule(spec).onnx_model).eval()
        twin.twin_info = {"source": f"ONNX file {Path(spec).name} (QDQ as fake-quant, onnx2torch)"}
        return twin, twin.twin_info["source"]
    if ":" in spec:
        twin = build_from_factory(spec).eval()
        twin.twin_info = {"source": f"factory {spec}"}
        return twin, twin.twin_info["source"]
    zoo = Zoo(zoo_dir)
    if spec not in zoo.names():
        raise QrobenchError(f"--twin {spec!r} is neither a zoo model ({', '.join(zoo.names())}), a "
                            "package.module:factory, nor an .onnx file")
    model, _ = zoo.load(spec)
    model.twin_info = {"source": f"zoo model {spec}"}
    return model, model.twin_info["source"]
