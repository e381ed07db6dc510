"""PyTorch int8 models (torch.ao FX/eager ``convert_fx``, and PT2E ``convert_pt2e`` graphs).

A converted FX model runs real int8 kernels (``torch.ao.nn.quantized`` modules,
``torch.ops.quantized``): its logits are the deployed model's, but it has no input gradient.
It is attacked through a *derived twin* (BPDA, ``deployed.py``): the same graph with float
kernels on the dequantized weights and each quantized activation fake-quantized at the scale
and zero-point the int8 graph holds there, so the twin's decisions follow the int8 model's.
Weights are measured from the codes the kernels pack (``int_repr`` with their own scales and
zero-points), never from float values.

PT2E converted graphs (``torchao`` ``convert_pt2e``; ``torch.ao.quantization.quantize_pt2e``
is no longer in torch 2.14) hold integer weight constants feeding ``quantized_decomposed``
dequantize nodes; they are read the same way, and their twin swaps quantize/dequantize pairs
for fake quantization.
"""

from __future__ import annotations

import copy
import functools
import hashlib
import io
import pickle
from pathlib import Path

import torch
import torch.fx as fx
import torch.nn as nn
import torch.nn.functional as F

from ..errors import CheckpointError, QrobenchError
from .codes import LayerCodes, bits_of_dtype
from .deployed import DeployedModel
from .readers import register_reader, unwrap

TWIN_SOURCE = ("derived: fake-quant twin of the converted graph (dequantized weights, "
               "activation fake-quant at the stored scales)")
PROBE_SHAPE = (1, 3, 32, 32)  # CIFAR-10: qparams of a static graph do not depend on the input
TWIN_HINT = "pass --twin (a zoo name or factory giving a float twin of the model)"


# -- which modules are torch.ao int8 modules ----------------------------------------------------

@functools.cache
def _classes() -> dict:
    """torch.ao quantized module classes, imported on first use (deprecated namespaces warn)."""
    import torch.ao.nn.intrinsic.quantized as nniq
    import torch.ao.nn.quantized as nnq
    import torch.ao.nn.quantized.dynamic as nnqd
    from torch.ao.nn.quantized.modules.conv import _ConvNd, _ConvTransposeNd

    conv_float = {nnq.Conv1d: nn.Conv1d, nnq.Conv2d: nn.Conv2d, nnq.Conv3d: nn.Conv3d,
                  nniq.ConvReLU1d: nn.Conv1d, nniq.ConvReLU2d: nn.Conv2d, nniq.ConvReLU3d: nn.Conv3d,
                  nnq.ConvTranspose1d: nn.ConvTranspose1d, nnq.ConvTranspose2d: nn.ConvTranspose2d,
                  nnq.ConvTranspose3d: nn.ConvTranspose3d}
    relu_fused = {nniq.ConvReLU1d, nniq.ConvReLU2d, nniq.ConvReLU3d, nniq.LinearReLU,
                  nniq.BNReLU2d, nniq.BNReLU3d}
    return {"conv": _ConvNd, "conv_transpose": _ConvTransposeNd, "linear": nnq.Linear,
            "dynamic": (nnqd.Linear,), "conv_float": conv_float, "relu_fused": relu_fused,
            "linear_ok": {nnq.Linear, nniq.LinearReLU},
            "bn": {nnq.BatchNorm2d: nn.BatchNorm2d, nnq.BatchNorm3d: nn.BatchNorm3d,
                   nniq.BNReLU2d: nn.BatchNorm2d, nniq.BNReLU3d: nn.BatchNorm3d},
            "quantize": nnq.Quantize, "dequantize": nnq.DeQuantize, "relu6": nnq.ReLU6}


def _is_weighted(m: nn.Module) -> bool:
    c = _classes()
    return isinstance(m, (c["conv"], c["linear"]))


def _is_quantized_module(m: nn.Module) -> bool:
    """An int8-kernel module (torch.ao.nn.quantized and its intrinsic/dynamic variants); the
    float ``reference`` modules are differentiable and not included."""
    mod = type(m).__module__
    return (mod.startswith(("torch.ao.nn.quantized", "torch.ao.nn.intrinsic.quantized",
                            "torch.nn.quantized", "torch.nn.intrinsic.quantized"))
            and ".reference" not in mod)


def is_torch_int8(model: nn.Module) -> bool:
    """Whether ``model`` holds torch.ao int8 conv/linear modules (convert_fx or eager convert)."""
    return any(_is_weighted(m) for m in unwrap(model).modules())


# -- reader: torch.ao packed weights ------------------------------------------------------------

def _codes_of(name: str, kind: str, w: torch.Tensor) -> LayerCodes:
    # contiguous: on some CPUs the x86 engine unpacks the weight channels-last, and code that
    # flattens the codes (bit errors, tests) must not depend on which
    if w.qscheme() in (torch.per_channel_affine, torch.per_channel_symmetric,
                       torch.per_channel_affine_float_qparams):
        return LayerCodes(name, kind, w.int_repr().contiguous(), w.q_per_channel_scales(),
                          w.q_per_channel_zero_points(), bits_of_dtype(w.dtype),
                          axis=int(w.q_per_channel_axis()))
    return LayerCodes(name, kind, w.int_repr().contiguous(), torch.tensor(w.q_scale()),
                      torch.tensor(w.q_zero_point()), bits_of_dtype(w.dtype))


def _ao_detect(model: nn.Module) -> bool:
    return is_torch_int8(model)


def _ao_float_elems(model: nn.Module, layers: list[LayerCodes]) -> int:
    """Biases of the int8 layers (packed with the weight, so not parameters) plus every float
    parameter and BatchNorm statistic left in the model."""
    n = 0
    for m in model.modules():
        if _is_weighted(m):
            b = m.bias()
            n += b.numel() if b is not None else 0
    n += sum(p.numel() for p in model.parameters() if p.is_floating_point())
    n += sum(b.numel() for name, b in model.named_buffers()
             if b.is_floating_point() and name.endswith(("running_mean", "running_var")))
    return n


@register_reader("torch.ao packed int8 weights (int_repr, per-channel scales and zero-points)",
                 "torch-ao", _ao_detect, eligible="every torch.ao quantized conv and linear",
                 float_elems=_ao_float_elems)
def read_torch_ao(model: nn.Module) -> list[LayerCodes]:
    layers = []
    for name, m in model.named_modules():
        if _is_weighted(m):
            kind = "conv" if isinstance(m, _classes()["conv"]) else "linear"
            layers.append(_codes_of(name, kind, m.weight()))
    return layers


# -- reader: PT2E integer constants ----------------------------------------------------------------

def _qd(name: str):
    """A ``quantized_decomposed`` op, or None where torch does not register it."""
    try:
        import torch.ao.quantization.fx._decomposed  # noqa: F401  (registers the ops)
        return getattr(torch.ops.quantized_decomposed, name)
    except (ImportError, AttributeError, RuntimeError):
        return None


@functools.cache
def _op_set(name: str) -> frozenset:
    op = _qd(name)
    return frozenset() if op is None else frozenset([op, *(getattr(op, o) for o in op.overloads())])


def _is_op(target, *names: str) -> bool:
    try:
        return any(target in _op_set(name) for name in names)
    except TypeError:  # an unhashable target is no quantized_decomposed op
        return False


def _attr(gm: nn.Module, target: str):
    return functools.reduce(getattr, target.split("."), gm)


def _const(gm: nn.Module, a):
    """A node argument's value where it is a constant (a literal or a ``get_attr``)."""
    if isinstance(a, fx.Node):
        return _attr(gm, a.target) if a.op == "get_attr" else None
    return a


_CONV_OPS = ("conv1d", "conv2d", "conv3d", "convolution", "conv_transpose1d", "conv_transpose2d",
             "conv_transpose3d")


def _pt2e_weights(gm: fx.GraphModule):
    """(dequantize node, integer constant node, consumer kind, layer name) for each weight."""
    found = []
    for n in gm.graph.nodes:
        if n.op != "call_function" or not _is_op(n.target, "dequantize_per_channel",
                                                 "dequantize_per_tensor"):
            continue
        src = n.args[0]
        if not (isinstance(src, fx.Node) and src.op == "get_attr"):
            continue
        t = _attr(gm, src.target)
        if not isinstance(t, torch.Tensor) or t.is_floating_point():
            continue
        kind, name = ("conv" if t.dim() > 2 else "linear"), src.target
        for u in n.users:
            op = str(getattr(u.target, "__name__", u.target)).split(".")[0]
            if u.op == "call_function" and op in _CONV_OPS + ("linear", "addmm", "mm"):
                kind = "conv" if op in _CONV_OPS else "linear"
                stack = u.meta.get("nn_module_stack") or {}
                name = list(stack.values())[-1][0] if stack else u.name
                break
        found.append((n, src, kind, name))
    return found


def is_pt2e(model: nn.Module) -> bool:
    """Whether ``model`` is a PT2E converted graph with integer weight constants."""
    model = unwrap(model)
    return isinstance(model, fx.GraphModule) and bool(_pt2e_weights(model))


def _pt2e_float_elems(model: nn.Module, layers: list[LayerCodes]) -> int:
    """Float tensors the graph reads (biases, unquantized weights), not the scales of coded
    weights; leftover float parameters that no node reads are not deployed and not counted."""
    coded = set()
    for n, src, _, _ in _pt2e_weights(model):
        coded.add(src.target)
        coded.update(a.target for a in n.args[1:3] if isinstance(a, fx.Node))
    n = 0
    for node in model.graph.nodes:
        if node.op == "get_attr" and node.target not in coded:
            t = _attr(model, node.target)
            if isinstance(t, torch.Tensor) and t.is_floating_point():
                n += t.numel()
    return n


@register_reader("pt2e integer weight constants (int8 tensors feeding quantized_decomposed "
                 "dequantize nodes)", "pt2e", is_pt2e,
                 eligible="every conv and linear whose weight is a dequantized integer constant",
                 float_elems=_pt2e_float_elems)
def read_pt2e(model: nn.Module) -> list[LayerCodes]:
    layers = []
    for n, src, kind, name in _pt2e_weights(model):
        codes = _attr(model, src.target)
        scale, zp = _const(model, n.args[1]), _const(model, n.args[2])
        if scale is None or zp is None:
            raise QrobenchError(f"pt2e graph: the scale or zero-point of {name} is computed, "
                                "not stored; cannot read its codes")
        per_channel = _is_op(n.target, "dequantize_per_channel")
        layers.append(LayerCodes(name, kind, codes, torch.as_tensor(scale),
                                 torch.as_tensor(zp), bits_of_dtype(codes.dtype),
                                 axis=int(n.args[3]) if per_channel else None,
                                 param_id=id(codes)))
    return layers


# -- the differentiable twin ------------------------------------------------------------------------

_QRANGE = {torch.quint8: (0, 255), torch.qint8: (-128, 127), torch.uint8: (0, 255),
           torch.int8: (-128, 127)}


def _range_of(dtype) -> tuple[int, int] | None:
    return _QRANGE.get(dtype)


class _Float(nn.Module):
    """A float kernel on the dequantized weights, optionally followed by ReLU."""

    def __init__(self, op: nn.Module, relu: bool):
        super().__init__()
        self.op, self.relu = op, relu

    def forward(self, x):
        y = self.op(x)
        return F.relu(y) if self.relu else y


def _float_conv(m: nn.Module) -> nn.Module:
    c = _classes()
    cls = c["conv_float"][type(m)]
    kw = dict(stride=m.stride, padding=m.padding, dilation=m.dilation, groups=m.groups,
              bias=m.bias() is not None)
    if isinstance(m, c["conv_transpose"]):
        kw["output_padding"] = m.output_padding
    else:
        kw["padding_mode"] = m.padding_mode
    f = cls(m.in_channels, m.out_channels, m.kernel_size, **kw)
    with torch.no_grad():
        f.weight.copy_(m.weight().dequantize())
        if m.bias() is not None:
            f.bias.copy_(m.bias().detach())
    return f


def _float_linear(m: nn.Module) -> nn.Module:
    w = m.weight()
    b = m.bias()
    f = nn.Linear(w.shape[1], w.shape[0], bias=b is not None)
    with torch.no_grad():
        f.weight.copy_(w.dequantize())
        if b is not None:
            f.bias.copy_(b.detach())
    return f


def _float_bn(m: nn.Module, cls) -> nn.Module:
    f = cls(m.num_features, eps=m.eps, momentum=m.momentum, affine=m.affine,
            track_running_stats=m.track_running_stats)
    f.load_state_dict({k: v for k, v in nn.BatchNorm2d.state_dict(m).items()
                       if k in f.state_dict()})
    return f.eval()


def _unsupported(what: str) -> QrobenchError:
    return QrobenchError(f"cannot derive a differentiable twin: {what} has no float equivalent "
                         f"in qrobench's twin builder; {TWIN_HINT}")


def _float_base(m: nn.Module):
    """The float ``torch.nn`` class an int8 module extends (LayerNorm, Hardswish, ELU ...),
    whose forward computes the same function on float inputs from the same attributes."""
    for cls in type(m).__mro__[1:]:
        if cls.__module__.startswith("torch.nn.modules") and cls is not nn.Module:
            return cls
    return None


class _FloatForward(nn.Module):
    """An int8 module's float-base forward on its own (float) attributes."""

    def __init__(self, m: nn.Module, base):
        super().__init__()
        self.m, self.base = m, base

    def forward(self, x):
        return self.base.forward(self.m, x)


def _twin_module(name: str, m: nn.Module) -> nn.Module | None:
    """The float stand-in of an int8 module (None: the module is an identity in the twin)."""
    c = _classes()
    t = type(m)
    if t in c["conv_float"]:
        return _Float(_float_conv(m), t in c["relu_fused"])
    if t in c["linear_ok"]:
        return _Float(_float_linear(m), t in c["relu_fused"])
    if t in c["bn"]:
        return _Float(_float_bn(m, c["bn"][t]), t in c["relu_fused"])
    if isinstance(m, (c["quantize"], c["dequantize"])):
        return None  # the int8 output's qparams are fake-quantized after it
    if t is c["relu6"]:  # extends nn.ReLU, whose forward is not ReLU6
        return nn.ReLU6()
    if not _is_quantized_module(m):
        return copy.deepcopy(m)
    base = _float_base(m)
    if base is None or isinstance(m, (c["conv"], c["linear"])):
        kind = "dynamic-quantized " if isinstance(m, c["dynamic"]) else ""
        raise _unsupported(f"module {name!r} ({kind}{t.__module__}.{t.__name__})")
    return _FloatForward(copy.deepcopy(m), base)


def _quantized_ops() -> dict:
    """torch.ops.quantized functional ops and their float meaning, on the first two arguments
    (the output scale and zero-point that follow are fake-quantized from the probe)."""
    q = torch.ops.quantized

    def add(a, b):
        return a + b

    def mul(a, b):
        return a * b

    def add_relu(a, b):
        return F.relu(a + b)

    def mul_relu(a, b):
        return F.relu(a * b)

    def cat(xs, dim=0):  # quantized::cat(Tensor[] qx, int dim, float? scale, int? zero_point)
        return torch.cat(list(xs), dim)

    table = {}
    for op_name, fn in (("add", add), ("add_relu", add_relu), ("mul", mul),
                        ("mul_relu", mul_relu), ("cat", cat)):
        try:
            packet = getattr(q, op_name)
        except (AttributeError, RuntimeError):
            continue
        table[packet] = fn
        for o in packet.overloads():
            table[getattr(packet, o)] = fn
    return table


def _is_quantized_namespace(target) -> bool:
    return isinstance(target, torch._ops.OpOverload | torch._ops.OpOverloadPacket) and \
        str(target).startswith("quantized.")


class _Probe(fx.Interpreter):
    """Records which nodes of the int8 graph hold a per-tensor quantized tensor, and its
    scale, zero-point and dtype (fixed by the graph in a static model, not by the input)."""

    def __init__(self, gm):
        super().__init__(gm)
        self.qparams: dict[str, tuple[float, int, torch.dtype]] = {}

    def run_node(self, n):
        out = super().run_node(n)
        if isinstance(out, torch.Tensor) and out.is_quantized:
            if out.qscheme() not in (torch.per_tensor_affine, torch.per_tensor_symmetric):
                raise _unsupported(f"node {n.name!r} (a per-channel quantized activation)")
            self.qparams[n.name] = (float(out.q_scale()), int(out.q_zero_point()), out.dtype)
        return out


def _fake_quant(graph: fx.Graph, x: fx.Node, scale: float, zero_point: int, dtype) -> fx.Node:
    lo_hi = _range_of(dtype)
    if lo_hi is None:  # e.g. qint32: finer than any float error the twin makes
        return x
    return graph.call_function(torch.fake_quantize_per_tensor_affine,
                               (x, scale, zero_point, *lo_hi))


def _probe_input(example_input):
    if example_input is not None:
        return example_input.detach().cpu()
    g = torch.Generator().manual_seed(0)
    return torch.rand(PROBE_SHAPE, generator=g)


def _run_probe(gm, example_input) -> dict:
    probe = _Probe(gm)
    x = _probe_input(example_input)
    try:
        with torch.no_grad():
            probe.run(x)
    except QrobenchError:
        raise
    except Exception as e:  # the user's graph: any failure is reported, not hidden
        raise QrobenchError(f"cannot derive a twin: the converted graph failed on a probe input "
                            f"of shape {tuple(x.shape)} ({type(e).__name__}: {str(e)[:200]}); "
                            f"give example_input, or {TWIN_HINT}") from e
    return probe.qparams


_BANNED_METHODS = {"int_repr", "q_scale", "q_zero_point", "q_per_channel_scales",
                   "q_per_channel_zero_points", "q_per_channel_axis"}


def _fx_twin_graph(gm: fx.GraphModule, qparams: dict) -> tuple[fx.Graph, dict]:
    graph, env, root = fx.Graph(), {}, {}
    named = dict(gm.named_modules())
    qops = _quantized_ops()

    def arg(a):
        return fx.map_arg(a, lambda node: env[node.name])

    for n in gm.graph.nodes:
        new = None
        if n.op == "call_module":
            sub = _twin_module(n.target, named[n.target])
            if sub is None:
                new = env[n.args[0].name]
            else:
                root[n.target] = sub
                new = graph.call_module(n.target, arg(n.args), arg(n.kwargs))
        elif n.op == "call_function":
            if n.target in (torch.quantize_per_tensor, torch.dequantize):
                new = env[n.args[0].name]
            elif n.target in qops:
                kw = {k: v for k, v in n.kwargs.items() if k not in ("scale", "zero_point")}
                new = graph.call_function(qops[n.target], arg(n.args[:2]), arg(kw))
            elif _is_quantized_namespace(n.target) or n.target in (
                    torch.quantize_per_channel, torch.quantize_per_tensor_dynamic):
                raise _unsupported(f"op {n.target} (node {n.name!r})")
        elif n.op == "call_method":
            if n.target == "dequantize":
                new = env[n.args[0].name]
            elif n.target in _BANNED_METHODS:
                raise _unsupported(f"method .{n.target}() (node {n.name!r})")
        elif n.op == "get_attr":
            t = _attr(gm, n.target)
            if isinstance(t, torch.Tensor):
                root[n.target] = t.dequantize() if t.is_quantized else t.detach().clone()
            elif isinstance(t, nn.Module):
                root[n.target] = copy.deepcopy(t)
            else:
                raise _unsupported(f"attribute {n.target!r} of type {type(t).__name__}")
        if new is None:
            new = graph.node_copy(n, lambda v: env[v.name])
        if n.name in qparams and n.op != "output":
            new = _fake_quant(graph, new, *qparams[n.name])
        env[n.name] = new
    return graph, root


def _pt2e_twin_graph(gm: fx.GraphModule) -> tuple[fx.Graph, dict]:
    """quantize → dequantize pairs become fake quantization; dequantize of an integer
    constant (a weight) stays, computed in float."""
    graph, env, root = fx.Graph(), {}, {}
    named = dict(gm.named_modules())
    for n in gm.graph.nodes:
        new = None
        if n.op == "call_function" and _is_op(n.target, "quantize_per_tensor"):
            x, scale, zp, qmin, qmax = n.args[:5]
            if isinstance(scale, fx.Node) or isinstance(zp, fx.Node):
                raise _unsupported(f"a quantize node with computed qparams ({n.name!r})")
            new = graph.call_function(torch.fake_quantize_per_tensor_affine,
                                      (env[x.name], float(scale), int(zp), int(qmin), int(qmax)))
        elif n.op == "call_function" and _is_op(n.target, "dequantize_per_tensor") and \
                isinstance(n.args[0], fx.Node) and n.args[0].op != "get_attr":
            new = env[n.args[0].name]
        elif n.op == "call_function" and _is_op(n.target, "choose_qparams", "quantize_per_channel",
                                                "quantize_per_tensor_dynamic"):
            raise _unsupported(f"op {n.target} (node {n.name!r})")
        elif n.op == "call_module":
            root[n.target] = copy.deepcopy(named[n.target])
        elif n.op == "get_attr":
            t = _attr(gm, n.target)
            root[n.target] = t.detach().clone() if isinstance(t, torch.Tensor) else copy.deepcopy(t)
        if new is None:
            new = graph.node_copy(n, lambda v: env[v.name])
        env[n.name] = new
    return graph, root


def derive_twin(model: nn.Module, example_input: torch.Tensor | None = None) -> nn.Module:
    """A differentiable fake-quant twin of a converted int8 graph (FX ``convert_fx`` or PT2E).

    ``example_input`` only runs the int8 graph once to find the quantized activations' qparams
    (default: one CIFAR-10-shaped input)."""
    model = unwrap(model)
    if not isinstance(model, fx.GraphModule):
        if not is_torch_int8(model):
            raise QrobenchError(f"{type(model).__name__} is not a converted torch int8 model")
        try:  # eager-mode convert: torch.ao modules are leaves of a symbolic trace
            model = fx.symbolic_trace(model)
        except Exception as e:  # the user's forward: any failure is reported
            raise QrobenchError(f"cannot derive a twin of the eager-mode int8 model: its forward "
                                f"does not trace ({type(e).__name__}: {str(e)[:200]}); convert "
                                f"it with convert_fx, or {TWIN_HINT}") from e
    if is_pt2e(model):
        graph, root = _pt2e_twin_graph(model)
    else:
        try:
            qparams = _run_probe(model, example_input)
        except QrobenchError:
            _fx_twin_graph(model, {})  # an unsupported op explains a failed probe best
            raise
        graph, root = _fx_twin_graph(model, qparams)
    graph._codegen = copy.deepcopy(model.graph._codegen)  # export graphs flatten inputs (pytree)
    twin = fx.GraphModule(root, graph, class_name="TorchInt8Twin")
    twin.graph.eliminate_dead_code()  # the scale/zero-point attributes the int8 ops read
    twin = fx.GraphModule(root, twin.graph, class_name="TorchInt8Twin")  # keeps only used ones
    for attr in ("_in_spec", "_out_spec"):
        if hasattr(model, attr):
            setattr(twin, attr, getattr(model, attr))
    for p in twin.parameters():
        p.requires_grad_(False)  # only input gradients are asked of a twin
    return twin.eval()


# -- the deployed model ---------------------------------------------------------------------------

def deploy(model: nn.Module, twin: nn.Module | None = None, *, twin_info: dict | None = None,
           name: str | None = None, example_input: torch.Tensor | None = None) -> DeployedModel:
    """The converted model as deployed (int8 CPU kernels), attacked through ``twin`` (derived
    from the graph when not given)."""
    model = unwrap(model)
    pt2e = is_pt2e(model)
    if not (pt2e or is_torch_int8(model)):
        raise QrobenchError(f"{type(model).__name__} holds no torch.ao int8 conv or linear "
                            "(convert it with convert_fx or convert_pt2e)")
    model = model.cpu() if pt2e else model.cpu().eval()  # exported graphs refuse .eval()
    if twin is None:
        twin = derive_twin(model, example_input)
        info = {"source": TWIN_SOURCE}
    else:
        info = {"source": f"given: {type(twin).__name__}", **(getattr(twin, "twin_info", None) or {})}
    info.update(twin_info or {})
    execution = {"runtime": "torch-pt2e (q/dq reference graph)" if pt2e else "torch-int8",
                 "engine": torch.backends.quantized.engine, "torch": torch.__version__,
                 "device": "cpu"}
    return DeployedModel(model, twin.eval(), execution=execution, twin_info=info, name=name)


# -- checkpoints ----------------------------------------------------------------------------------

def _is_packed(key: str, v) -> bool:
    return key.endswith("_packed_params._packed_params") and isinstance(v, tuple)


def is_torch_int8_state(state: dict) -> bool:
    """Whether a state dict (read with ``weights_only=True``) is a converted torch.ao model's:
    quantized tensors, or packed linear parameters."""
    return isinstance(state, dict) and any(
        (isinstance(v, torch.Tensor) and v.is_quantized) or _is_packed(k, v)
        or (k.endswith("_packed_params.dtype") and isinstance(v, torch.dtype))
        for k, v in state.items())


def _leaves(key: str, v):
    """(key, description) of every tensor in a state entry: shape, dtype, qscheme."""
    if isinstance(v, tuple | list):
        for i, x in enumerate(v):
            yield from _leaves(f"{key}[{i}]", x)
    elif isinstance(v, torch.Tensor):
        q = "float"
        if v.is_quantized:
            per_tensor = v.qscheme() in (torch.per_tensor_affine, torch.per_tensor_symmetric)
            q = "per-tensor" if per_tensor else "per-channel"
        yield key, (tuple(v.shape), str(v.dtype).replace("torch.", ""), q)
    elif v is None or isinstance(v, torch.dtype):
        yield key, repr(v)
    else:
        yield key, type(v).__name__


def _read(path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path} not found")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, ValueError) as e:
        first = (str(e).strip().splitlines() or [type(e).__name__])[0]
        raise CheckpointError(f"{path} cannot be loaded with torch.load(weights_only=True) "
                              f"({first[:200]}); save converted.state_dict() with torch.save") from e
    if not isinstance(state, dict):
        raise CheckpointError(f"{path} does not hold a state dict; save converted.state_dict()")
    return state


def load_state(model: nn.Module, path_or_state) -> nn.Module:
    """Loads a converted model's saved state dict into ``model`` (same structure), refusing any
    mismatch: torch.ao's own ``load_state_dict`` replaces packed weights of another shape
    without a word."""
    state = path_or_state if isinstance(path_or_state, dict) else _read(path_or_state)
    target = unwrap(model)
    want = dict(leaf for k, v in target.state_dict().items() for leaf in _leaves(k, v))
    got = dict(leaf for k, v in state.items() for leaf in _leaves(k, v))
    missing, extra = sorted(set(want) - set(got)), sorted(set(got) - set(want))
    wrong = [f"{k}: {got[k]} (model: {want[k]})" for k in want if k in got and got[k] != want[k]]
    if missing or extra or wrong:
        parts = []
        for label, items in (("missing", missing), ("unexpected", extra), ("mismatched", wrong)):
            if items:
                parts.append(f"{label} {', '.join(items[:4])}{' ...' if len(items) > 4 else ''}")
        raise CheckpointError("the int8 state dict does not fit the converted model: "
                              + "; ".join(parts))
    try:
        target.load_state_dict(state, strict=True)
    except (RuntimeError, KeyError, TypeError) as e:
        raise CheckpointError(f"the int8 state dict does not load: {str(e)[:300]}") from e
    return model


def save_state(model: nn.Module, path) -> str:
    """torch.save of the converted model's state dict; returns the file's sha256, after
    checking it reads back with ``weights_only=True`` into the same entries."""
    state = unwrap(model).state_dict()
    buf = io.BytesIO()
    torch.save(state, buf)
    data = buf.getvalue()
    back = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    if dict(leaf for k, v in back.items() for leaf in _leaves(k, v)) != \
            dict(leaf for k, v in state.items() for leaf in _leaves(k, v)):
        raise CheckpointError("the int8 state dict does not read back with weights_only=True")
    Path(path).write_bytes(data)
    return hashlib.sha256(data).hexdigest()


__all__ = ["derive_twin", "deploy", "is_pt2e", "is_torch_int8", "is_torch_int8_state",
           "load_state", "read_pt2e", "read_torch_ao", "save_state"]
