"""ONNX Runtime models, evaluated and attacked as ONNX Runtime runs them.

A model quantized with ``onnxruntime.quantization.quantize_static`` is deployed through ORT's
integer kernels, which give logits but no gradient. :func:`load_onnx` wraps the session in a
:class:`~qrobench.toolkits.deployed.DeployedModel`: every prediction is the session's, the
gradient comes from a differentiable twin, by default the same ONNX graph converted to torch
with onnx2torch, each QuantizeLinear / DequantizeLinear pair becoming a fake-quantizer with a
straight-through gradient. The weights' integer codes, scales and zero-points are read from the
graph's initializers, so the model's bit-width and size are those it ships.

onnx, onnxruntime and onnx2torch are imported only when an ONNX model is used, so qrobench
imports without them.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn

from ..errors import QrobenchError
from .codes import LayerCodes
from .readers import register_reader, unwrap

INSTALL_HINT = "pip install 'qrobench[onnx]'"
TWIN_SOURCE = "derived: the ONNX graph with QDQ as fake-quant (onnx2torch)"

# ONNX TensorProto data types of integer codes: (bits, qmin, qmax)
_INT_TYPES = {
    2: (8, 0, 255),  # UINT8
    3: (8, -128, 127),  # INT8
    4: (16, 0, 65535),  # UINT16
    5: (16, -32768, 32767),  # INT16
    6: (32, -(2 ** 31), 2 ** 31 - 1),  # INT32 (biases)
    21: (4, 0, 15),  # UINT4
    22: (4, -8, 7),  # INT4
}
_FLOAT_TYPES = {1, 10, 11, 16}  # FLOAT, FLOAT16, DOUBLE, BFLOAT16
_INT32 = 6
_WEIGHT_OPS = {"Conv": "conv", "Gemm": "linear", "MatMul": "linear"}
# QOperator-format ops (ORT's integer kernels as graph nodes): no float graph to convert
_QOPERATOR_OPS = {"QLinearConv", "QLinearMatMul", "QGemm", "ConvInteger", "MatMulInteger",
                  "DynamicQuantizeLinear"}


def _import(module: str):
    try:
        return __import__(module)
    except ImportError as e:
        raise QrobenchError(f"ONNX models need {module}, which is not installed: {INSTALL_HINT}") from e


def _first_line(e: BaseException) -> str:
    text = str(e).strip()
    return text.splitlines()[0] if text else type(e).__name__


# ---------------------------------------------------------------------------------------------
# The deployed model: an ONNX Runtime session


class OnnxRuntimeModule(nn.Module):
    """An ORT inference session as a module, so readers and wrappers can treat it as a model.

    The session is not picklable: a copy drops it and opens its own on first use."""

    def __init__(self, path: str | Path, providers: list | None = None):
        super().__init__()
        onnx = _import("onnx")
        self.path = Path(path)
        if not self.path.is_file():
            raise QrobenchError(f"ONNX model not found: {self.path}")
        data = self.path.read_bytes()
        self.sha256 = hashlib.sha256(data).hexdigest()
        try:
            self.onnx_model = onnx.load_model_from_string(data)
        except Exception as e:
            raise QrobenchError(f"{self.path} is not an ONNX model ({_first_line(e)})") from e
        if len(self.onnx_model.graph.node) == 0:
            raise QrobenchError(f"{self.path} is not an ONNX model (it has no graph)")
        if len(self.onnx_model.graph.output) != 1:
            raise QrobenchError(f"{self.path}: the graph must have exactly one output (the logits), "
                                f"it has {len(self.onnx_model.graph.output)}")
        self.providers = list(providers) if providers else ["CPUExecutionProvider"]
        self._session = None
        sess = self.session  # opened now, so a bad file or provider fails at load time
        inputs = sess.get_inputs()
        if len(inputs) != 1:
            raise QrobenchError(f"{self.path}: the graph must have exactly one input (the images), "
                                f"it has {len(inputs)}: {[i.name for i in inputs]}")
        self.input_name = inputs[0].name
        self.input_shape = list(inputs[0].shape)  # ints for fixed dims, str / None for dynamic
        self.output_name = sess.get_outputs()[0].name
        if len(self.input_shape) != 4:
            raise QrobenchError(f"{self.path}: input {self.input_name!r} has shape {self.input_shape}; "
                                "expected images, N x C x H x W")
        if isinstance(self.input_shape[0], int):
            raise QrobenchError(
                f"{self.path}: the batch dimension of input {self.input_name!r} is fixed to "
                f"{self.input_shape[0]}; export with a dynamic batch axis (torch.onnx.export(..., "
                f"dynamic_axes={{{self.input_name!r}: {{0: 'n'}}, <output>: {{0: 'n'}}}}))")

    @property
    def session(self):
        if self._session is None:
            ort = _import("onnxruntime")
            opts = ort.SessionOptions()
            opts.intra_op_num_threads = torch.get_num_threads()
            try:
                self._session = ort.InferenceSession(self.onnx_model.SerializeToString(), opts,
                                                     providers=self.providers)
            except Exception as e:
                raise QrobenchError(f"ONNX Runtime cannot load {self.path}: {_first_line(e)}") from e
        return self._session

    def graph_changed(self) -> None:
        """``onnx_model`` was edited in place (e.g. its weight codes): the next run opens a session on it."""
        self._session = None

    def __getstate__(self):
        state = dict(self.__dict__)
        state["_session"] = None
        return state

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 4 or any(isinstance(d, int) and d != s
                               for d, s in zip(self.input_shape[1:], x.shape[1:], strict=True)):
            raise QrobenchError(f"{self.path.name} expects input of shape {self.input_shape}, "
                                f"got {list(x.shape)}")
        arr = x.detach().to("cpu", torch.float32).contiguous().numpy()
        out = self.session.run([self.output_name], {self.input_name: arr})[0]
        return torch.from_numpy(np.ascontiguousarray(out)).to(torch.float32)

    def execution(self) -> dict:
        ort = _import("onnxruntime")
        provider = self.session.get_providers()[0]
        device = "cuda" if provider in ("CUDAExecutionProvider", "TensorrtExecutionProvider") else "cpu"
        return {"runtime": "onnxruntime", "version": ort.__version__, "provider": provider,
                "device": device}

    def extra_repr(self) -> str:
        return f"path={str(self.path)!r}, sha256={self.sha256[:12]}, providers={self.providers}"


def is_onnx_model(m: nn.Module) -> bool:
    return isinstance(unwrap(m), OnnxRuntimeModule)


# ---------------------------------------------------------------------------------------------
# Codes of the deployed weights, read from the graph's initializers


def _constants(graph) -> dict[str, object]:
    """Name → TensorProto of every constant: initializers and Constant nodes' tensors."""
    consts = {t.name: t for t in graph.initializer}
    for n in graph.node:
        if n.op_type == "Constant":
            for a in n.attribute:
                if a.name == "value":
                    t = type(a.t)()
                    t.CopyFrom(a.t)
                    t.name = n.output[0]
                    consts[n.output[0]] = t
    return consts


def _array(t) -> np.ndarray:
    from onnx import numpy_helper

    a = numpy_helper.to_array(t)
    if t.data_type in _INT_TYPES:
        a = a.astype(np.int64)  # int4 arrives as an ml_dtypes type torch cannot take
    return a


def _attr(node, name: str, default=None):
    from onnx import helper

    for a in node.attribute:
        if a.name == name:
            return helper.get_attribute_value(a)
    return default


def _layer(name, kind, codes_t, scale_t, zp_t, axis, transpose: bool) -> LayerCodes:
    """Codes in (out, in, ...) order: a MatMul's / untransposed Gemm's (in, out) weight is
    transposed, so per-channel scales and input-channel sparsity mean the same as for a Conv."""
    codes = _array(codes_t)
    scale = _array(scale_t).astype(np.float64)
    zp = _array(zp_t) if zp_t is not None else np.zeros(scale.shape, np.int64)
    if scale.size == 1:
        axis = None
    elif axis is not None and axis < 0:
        axis += codes.ndim
    if transpose:
        if codes.ndim != 2:
            raise QrobenchError(f"layer {name}: a {codes.ndim}-D MatMul weight is not supported")
        codes = codes.T
        axis = None if axis is None else 1 - axis
    return LayerCodes(name, kind, torch.from_numpy(np.ascontiguousarray(codes)),
                      torch.from_numpy(scale), torch.from_numpy(zp), _INT_TYPES[codes_t.data_type][0],
                      axis=axis)


@dataclass(frozen=True)
class WeightSource:
    """Where one layer's codes live in the graph: the names of its constants and their layout."""

    layer: str
    kind: str  # "conv" | "linear"
    codes: str  # the integer constant
    scale: str
    zero_point: str | None
    axis: int | None  # the scale's axis in the stored constant
    transpose: bool  # stored (in, out): read transposed, so the codes are (out, in) as for a Conv


def weight_sources(onnx_model) -> list[WeightSource]:
    """The constants of every Conv / Gemm / MatMul weight stored as integer codes (QDQ or QOperator)."""
    graph = onnx_model.graph
    consts = _constants(graph)
    producer = {o: n for n in graph.node for o in n.output}
    found = []

    def is_codes(name):
        return name in consts and consts[name].data_type in _INT_TYPES and consts[name].data_type != _INT32

    for node in graph.node:
        name = node.name or node.output[0]
        op = node.op_type
        if op in _WEIGHT_OPS:
            # QDQ: integer initializer -> DequantizeLinear -> the op's weight input
            cands = [1] if op != "MatMul" else [1, 0]
            for i in cands:
                dq = producer.get(node.input[i]) if i < len(node.input) else None
                if dq is None or dq.op_type != "DequantizeLinear" or not is_codes(dq.input[0]):
                    continue
                if len(dq.input) < 2 or dq.input[1] not in consts:
                    continue
                if _attr(dq, "block_size", 0):
                    raise QrobenchError(f"layer {name}: blocked quantization (block_size) is not "
                                        "supported by qrobench's ONNX reader")
                zp = dq.input[2] if len(dq.input) > 2 and dq.input[2] else None
                transpose = (op == "MatMul" and i == 1) or (op == "Gemm" and not _attr(node, "transB", 0))
                if op == "MatMul" and i == 0:  # constant left operand: (out, in) already
                    transpose = False
                found.append(WeightSource(name, _WEIGHT_OPS[op], dq.input[0], dq.input[1], zp,
                                          _attr(dq, "axis", 1), transpose))
                break
        elif op in ("QLinearConv", "QLinearMatMul", "QGemm"):
            # QOperator: (x, x_scale, x_zp, w, w_scale, w_zp, ...): one scale per output channel
            w, s, z = node.input[3], node.input[4], node.input[5] if len(node.input) > 5 else ""
            if not is_codes(w) or s not in consts:
                continue
            if op == "QLinearConv":
                kind, axis, transpose = "conv", 0, False
            elif op == "QGemm" and _attr(node, "transB", 0):
                kind, axis, transpose = "linear", 0, False
            else:  # (in, out): scales along the columns
                kind, axis, transpose = "linear", 1, True
            found.append(WeightSource(name, kind, w, s, z or None, axis, transpose))
    return found


def _weight_codes(onnx_model) -> tuple[list[LayerCodes], set[str]]:
    """(codes of every Conv / Gemm / MatMul weight, names of the initializers they use)."""
    consts = _constants(onnx_model.graph)
    sources = weight_sources(onnx_model)
    layers = [_layer(s.layer, s.kind, consts[s.codes], consts[s.scale],
                     consts.get(s.zero_point) if s.zero_point else None, s.axis, s.transpose) for s in sources]
    return layers, {x for s in sources for x in (s.codes, s.scale, s.zero_point) if x}


def _float_elems(model: OnnxRuntimeModule, layers: list[LayerCodes]) -> int:
    """Every float or int32 initializer outside the weights' codes, scales and zero-points counts
    as one fp32 element: biases (int32 codes in a quantized graph), their scales and zero-points,
    activation scales, unquantized weights. Integer shape constants (int64) and activation
    zero-points (8-bit) are not weights and are left out."""
    _, used = _weight_codes(model.onnx_model)
    return sum(int(np.prod(t.dims)) for name, t in _constants(model.onnx_model.graph).items()
               if name not in used and (t.data_type in _FLOAT_TYPES or t.data_type == _INT32))


@register_reader("ONNX initializers (DequantizeLinear / QLinearConv weights, scales, zero-points)",
                 "onnx", detect=lambda m: isinstance(m, OnnxRuntimeModule),
                 eligible="every Conv / Gemm / MatMul weight stored as integer codes",
                 float_elems=_float_elems)
def read_onnx_codes(model: OnnxRuntimeModule) -> list[LayerCodes]:
    return _weight_codes(model.onnx_model)[0]


# ---------------------------------------------------------------------------------------------
# The twin: the QDQ graph in torch, fake-quant with straight-through gradients


def _along(t: torch.Tensor, axis: int | None, dim: int) -> torch.Tensor:
    if t.numel() == 1 or axis is None:
        return t.reshape(())
    shape = [1] * dim
    shape[axis if axis >= 0 else axis + dim] = -1
    return t.reshape(shape)


class FakeQuantizeLinear(nn.Module):
    """ONNX QuantizeLinear, but differentiable: the codes stay float, round passes the gradient
    straight through and clamp passes it inside [qmin, qmax]."""

    def __init__(self, scale: torch.Tensor, zero_point: torch.Tensor, axis: int, qmin: int, qmax: int):
        super().__init__()
        self.register_buffer("scale", scale.to(torch.float32))
        self.register_buffer("zero_point", zero_point.to(torch.float32))
        self.axis, self.qmin, self.qmax = axis, qmin, qmax

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = x / _along(self.scale, self.axis, x.dim())
        y = y + (torch.round(y) - y).detach()  # round half to even, as ONNX
        return torch.clamp(y + _along(self.zero_point, self.axis, x.dim()), self.qmin, self.qmax)

    def extra_repr(self) -> str:
        return f"axis={self.axis}, range=[{self.qmin}, {self.qmax}], channels={self.scale.numel()}"


class DequantizeLinear(nn.Module):
    def __init__(self, scale: torch.Tensor, zero_point: torch.Tensor, axis: int):
        super().__init__()
        self.register_buffer("scale", scale.to(torch.float32))
        self.register_buffer("zero_point", zero_point.to(torch.float32))
        self.axis = axis

    def forward(self, q: torch.Tensor) -> torch.Tensor:
        q = q if q.is_floating_point() else q.to(torch.float32)
        return (q - _along(self.zero_point, self.axis, q.dim())) * _along(self.scale, self.axis, q.dim())

    def extra_repr(self) -> str:
        return f"axis={self.axis}, channels={self.scale.numel()}"


def _qdq_params(node, graph):
    """(scale, zero-point, zero-point's ONNX type or None, axis) of a Q / DQ node; constants only."""
    def const(name):
        if name in graph.initializers:
            t = graph.initializers[name].proto
        else:
            try:
                src = graph.value_as_node_output(name)[0].proto
            except KeyError:
                src = None
            t = next((a.t for a in src.attribute if a.name == "value"), None) \
                if src is not None and src.op_type == "Constant" else None
            if t is None:
                raise NotImplementedError(f"{node.operation_type} {node.name!r}: scale or zero-point "
                                          f"{name!r} is computed, not a constant")
        return torch.from_numpy(_array(t)), t.data_type

    if node.attributes.get("block_size", 0):
        raise NotImplementedError(f"{node.operation_type} {node.name!r}: blocked quantization")
    scale, _ = const(node.input_values[1])
    if len(node.input_values) > 2 and node.input_values[2]:
        zp, zp_type = const(node.input_values[2])
    else:
        zp, zp_type = torch.zeros_like(scale), None
    return scale, zp, zp_type, node.attributes.get("axis", 1)


def _convert_quantize(node, graph):
    from onnx2torch.utils.common import OnnxMapping, OperationConverterResult

    scale, zp, zp_type, axis = _qdq_params(node, graph)
    out_type = zp_type or node.attributes.get("output_dtype", 0) or 2  # UINT8 by default
    if out_type not in _INT_TYPES or out_type == _INT32:
        raise NotImplementedError(f"QuantizeLinear {node.name!r} to ONNX type {out_type}: only "
                                  "integer codes are supported")
    _, qmin, qmax = _INT_TYPES[out_type]
    return OperationConverterResult(
        torch_module=FakeQuantizeLinear(scale, zp, axis, qmin, qmax),
        onnx_mapping=OnnxMapping(inputs=(node.input_values[0],), outputs=node.output_values))


def _convert_dequantize(node, graph):
    from onnx2torch.utils.common import OnnxMapping, OperationConverterResult

    scale, zp, _, axis = _qdq_params(node, graph)
    return OperationConverterResult(
        torch_module=DequantizeLinear(scale, zp, axis),
        onnx_mapping=OnnxMapping(inputs=(node.input_values[0],), outputs=node.output_values))


def register_qdq_converters() -> None:
    """Adds Q / DQ to onnx2torch's registry for every opset version of the two ops; a version
    already registered (a second call, or onnx2torch's own) is left as it is."""
    import onnx.defs
    from onnx2torch.node_converters.registry import add_converter

    versions = {(s.name, s.since_version) for s in onnx.defs.get_all_schemas_with_history()
                if s.domain == "" and s.name in ("QuantizeLinear", "DequantizeLinear")}
    for op, version in sorted(versions):
        try:
            add_converter(op, version)(_convert_quantize if op == "QuantizeLinear" else _convert_dequantize)
        except ValueError:  # already registered
            pass


def _dequantized(codes: np.ndarray, scale: np.ndarray, zp: np.ndarray | None, axis: int,
                 block: int) -> np.ndarray:
    """DequantizeLinear on constants, in float32 as ORT computes it."""
    codes = codes.astype(np.int64)
    zp = np.zeros_like(scale, np.int64) if zp is None else zp.astype(np.int64)
    if scale.size > 1:
        axis = axis if axis >= 0 else axis + codes.ndim
        if block:
            scale = np.repeat(scale, block, axis=axis)[(slice(None),) * axis + (slice(0, codes.shape[axis]),)]
            zp = np.repeat(zp, block, axis=axis)[(slice(None),) * axis + (slice(0, codes.shape[axis]),)]
        else:
            shape = [1] * codes.ndim
            shape[axis] = -1
            scale, zp = scale.reshape(shape), zp.reshape(shape)
    return ((codes - zp).astype(np.float32) * scale.astype(np.float32)).astype(np.float32)


def _fold_constant_dequantize(onnx_model):
    """A copy of the graph with every DequantizeLinear of constants (weights, biases) replaced by
    its float result: onnx2torch builds Conv / Gemm layers only from constant weights."""
    import onnx
    from onnx import numpy_helper

    m = onnx.ModelProto()
    m.CopyFrom(onnx_model)
    g = m.graph
    consts = _constants(g)
    keep, folded = [], []
    for n in g.node:
        ins = [x for x in n.input if x]
        if n.op_type == "DequantizeLinear" and all(x in consts for x in ins):
            zp = _array(consts[n.input[2]]) if len(n.input) > 2 and n.input[2] else None
            w = _dequantized(_array(consts[n.input[0]]), _array(consts[n.input[1]]).astype(np.float32), zp,
                             _attr(n, "axis", 1), _attr(n, "block_size", 0))
            t = numpy_helper.from_array(w, name=n.output[0])
            consts[n.output[0]] = t
            folded.append(t)
        else:
            keep.append(n)
    if not folded:
        return m
    used = {x for n in keep for x in n.input} | {o.name for o in g.output}
    inits = [t for t in g.initializer if t.name in used] + [t for t in folded if t.name in used]
    del g.node[:]
    g.node.extend(keep)
    del g.initializer[:]
    g.initializer.extend(inits)
    names = {t.name for t in inits}
    kept_inputs = [i for i in g.input if i.name not in consts or i.name in names]
    del g.input[:]
    g.input.extend(kept_inputs)
    return m


def derive_twin(onnx_model) -> nn.Module:
    """The ONNX graph as a torch module: weights dequantized once, activation Q / DQ as
    fake-quant with straight-through gradients; ORT's integer kernels compute the same
    function up to their rounding of accumulators and requantization."""
    _import("onnx")
    try:
        import onnx2torch
    except ImportError as e:
        raise QrobenchError(f"deriving a twin of an ONNX model needs onnx2torch: {INSTALL_HINT}, "
                            "or pass --twin (a zoo model name or factory)") from e
    qop = sorted({n.op_type for n in onnx_model.graph.node
                  if n.op_type in _QOPERATOR_OPS or n.domain not in ("", "ai.onnx")})
    if qop:
        raise QrobenchError(
            f"the ONNX model is in QOperator format ({', '.join(qop)}): ONNX Runtime's integer "
            "operators have no differentiable equivalent to attack through; quantize with "
            "quantize_static(..., quant_format=QuantFormat.QDQ), or pass --twin (a zoo model name "
            "or factory)")
    register_qdq_converters()
    try:
        twin = onnx2torch.convert(_fold_constant_dequantize(onnx_model))
    except (NotImplementedError, KeyError, ValueError, RuntimeError) as e:
        raise QrobenchError(f"cannot convert the ONNX graph to a differentiable twin "
                            f"({_first_line(e)}); pass --twin (a zoo model name or factory)") from e
    twin.eval()
    twin.requires_grad_(False)  # only input gradients are asked for
    return twin


# ---------------------------------------------------------------------------------------------


def load_onnx(path: str | Path, twin: nn.Module | None = None, providers: list | None = None,
              expected_sha256: str | None = None):
    """An ONNX model as deployed by ONNX Runtime, attacked through ``twin`` (derived from the
    graph when not given); ``expected_sha256`` (a zoo card's) is checked before anything runs."""
    from .deployed import DeployedModel

    _import("onnxruntime")
    deployed = OnnxRuntimeModule(path, providers=providers)
    if expected_sha256 is not None and deployed.sha256 != expected_sha256:
        raise QrobenchError(f"ONNX model {path} has sha256 {deployed.sha256[:12]}… but its card says "
                            f"{expected_sha256[:12]}…; the file was changed or the card is stale")
    if twin is None:
        twin = derive_twin(deployed.onnx_model)
        from importlib.metadata import PackageNotFoundError, version

        try:
            info = {"source": TWIN_SOURCE, "onnx2torch": version("onnx2torch")}
        except PackageNotFoundError:
            info = {"source": TWIN_SOURCE}
    else:
        info = {"source": "given", "class": f"{type(twin).__module__}.{type(twin).__qualname__}"}
        info.update(getattr(twin, "twin_info", None) or {})
        if getattr(twin, "name", None):
            info["name"] = twin.name
    info.update({"onnx_file": str(deployed.path), "onnx_sha256": deployed.sha256})
    return DeployedModel(deployed, twin, execution=deployed.execution(), twin_info=info,
                         name=deployed.path.stem)
