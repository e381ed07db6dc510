"""A torch.ao int8 state dict as plain tensors, so it is stored as safetensors like every zoo
checkpoint (no pickle, nothing runs on load).

A converted model's ``state_dict()`` holds quantized tensors (codes + scales + zero-points),
packed-parameter tuples and ``torch.dtype`` entries. Each quantized tensor becomes its
``int_repr()`` with its scales and zero-points beside it; tuples and dtypes are described in
a JSON layout kept in the file's metadata, from which ``decode`` rebuilds the exact state.
"""

from __future__ import annotations

from collections import OrderedDict

import torch

_SCALES, _ZPS = ".__scales", ".__zero_points"


def is_int8_state(state: dict) -> bool:
    """A state dict read with ``weights_only=True`` that holds torch.ao quantized entries."""
    def ok(v):
        return isinstance(v, (torch.Tensor, torch.dtype, type(None))) or (
            isinstance(v, tuple) and all(ok(x) for x in v))
    return bool(state) and all(isinstance(k, str) and ok(v) for k, v in state.items()) and any(
        isinstance(v, (torch.dtype, tuple)) or (isinstance(v, torch.Tensor) and v.is_quantized)
        for v in state.values())


def encode(state: dict) -> tuple[dict[str, torch.Tensor], dict]:
    """(plain tensors, layout) for a torch.ao state dict."""
    tensors: dict[str, torch.Tensor] = {}

    def put(key: str, v):
        if v is None:
            return {"none": True}
        if isinstance(v, torch.dtype):
            return {"dtype": str(v).replace("torch.", "")}
        if isinstance(v, tuple):
            return {"tuple": [put(f"{key}.__{i}", x) for i, x in enumerate(v)]}
        if not isinstance(v, torch.Tensor):
            raise TypeError(f"state entry {key!r} is a {type(v).__name__}; only tensors, dtypes and tuples")
        v = v.detach().cpu()
        if not v.is_quantized:
            tensors[key] = v.contiguous()
            return {"tensor": True}
        tensors[key] = v.int_repr().contiguous()
        qdtype = str(v.dtype).replace("torch.", "")
        if v.qscheme() in (torch.per_channel_affine, torch.per_channel_symmetric):
            tensors[key + _SCALES] = v.q_per_channel_scales().double().contiguous()
            tensors[key + _ZPS] = v.q_per_channel_zero_points().long().contiguous()
            return {"quantized": qdtype, "axis": int(v.q_per_channel_axis())}
        tensors[key + _SCALES] = torch.tensor([v.q_scale()], dtype=torch.float64)
        tensors[key + _ZPS] = torch.tensor([v.q_zero_point()], dtype=torch.int64)
        return {"quantized": qdtype, "axis": None}

    layout = {"entries": {k: put(k, v) for k, v in state.items()},
              # module versions: a quantized module loads an unversioned state by its legacy layout
              "versions": {p: dict(v) for p, v in (getattr(state, "_metadata", None) or {}).items()}}
    return tensors, layout


def decode(tensors: dict[str, torch.Tensor], layout: dict) -> dict:
    """The state dict ``encode`` was given, rebuilt exactly."""
    def get(key: str, spec: dict):
        if spec.get("none"):
            return None
        if "dtype" in spec:
            return getattr(torch, spec["dtype"])
        if "tuple" in spec:
            return tuple(get(f"{key}.__{i}", s) for i, s in enumerate(spec["tuple"]))
        if spec.get("tensor"):
            return tensors[key]
        codes, scales, zps = tensors[key], tensors[key + _SCALES], tensors[key + _ZPS]
        if spec["axis"] is not None:
            return torch._make_per_channel_quantized_tensor(codes, scales, zps, spec["axis"])
        return torch._make_per_tensor_quantized_tensor(codes, float(scales[0]), int(zps[0]))

    state = OrderedDict((k, get(k, spec)) for k, spec in layout["entries"].items())
    state._metadata = OrderedDict((p, dict(v)) for p, v in layout.get("versions", {}).items())
    return state
