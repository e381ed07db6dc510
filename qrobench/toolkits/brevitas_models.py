"""Brevitas models: weights measured from ``quant_weight()``, forwards materialised.

A Brevitas layer keeps a float latent weight and re-quantizes it on every forward, so reading
its parameters measures fp32 and attacking it pays for the quantizer at each step. The codes
the network deploys are those of ``quant_weight()`` (an ``IntQuantTensor``: value, scale,
zero-point, bit width); :func:`materialise` computes them once.
"""

from __future__ import annotations

import copy
from collections import Counter

import torch
import torch.nn as nn

from .codes import LayerCodes
from .deployed import Materialised
from .readers import register_reader, unwrap

READER = "brevitas quant_weight() (int codes, scale, zero-point, bit width)"
ELIGIBLE = "every Brevitas QuantConv/QuantLinear with quantized weights"

# Brevitas class -> (LayerCodes kind, the plain torch layer computing the same thing)
_LAYERS = {"QuantConv1d": ("conv", nn.Conv1d), "QuantConv2d": ("conv", nn.Conv2d),
           "QuantConv3d": ("conv", nn.Conv3d), "QuantLinear": ("linear", nn.Linear)}
# weight proxies whose tensor_quant maps the weight alone to the quant tensor's fields
_FREEZABLE_PROXIES = ("WeightQuantProxyFromInjector", "DecoupledWeightQuantProxyFromInjector")


def _brevitas_class(m: nn.Module) -> str | None:
    """The first Brevitas class in ``m``'s MRO (a user subclass of QuantConv2d still counts)."""
    for cls in type(m).__mro__:
        if cls.__module__.split(".")[0] == "brevitas":
            return cls.__name__
    return None


def _weight_quantized(m: nn.Module) -> bool:
    proxy = getattr(m, "weight_quant", None)
    return (hasattr(m, "quant_weight") and _brevitas_class(m) is not None
            and bool(getattr(proxy, "is_quant_enabled", False)))


def is_brevitas(model: nn.Module) -> bool:
    """Whether the model (through qrobench's wrappers) holds any Brevitas module."""
    return any(_brevitas_class(m) is not None for m in unwrap(model).modules())


def _detect(model: nn.Module) -> bool:
    return any(_weight_quantized(m) for m in model.modules())


def _channel_axis(t: torch.Tensor, shape: torch.Size, what: str, name: str) -> int | None:
    if t.numel() == 1:
        return None
    dims = [d for d, n in enumerate(t.shape) if n != 1]
    if t.dim() == len(shape) and len(dims) == 1 and t.shape[dims[0]] == shape[dims[0]]:
        return dims[0]
    raise ValueError(f"Brevitas layer {name}: {what} of shape {tuple(t.shape)} is neither per tensor nor "
                     f"per output channel of a weight of shape {tuple(shape)} (groupwise scales are not read)")


def _layer_codes(name: str, kind: str, m: nn.Module) -> LayerCodes:
    try:
        qt = m.quant_weight()
    except (AssertionError, RuntimeError) as e:  # e.g. a quantizer that needs a cached input
        raise ValueError(f"Brevitas layer {name}: quant_weight() failed ({e}); run one inference "
                         "pass first if its weight quantizer depends on the input") from e
    if type(qt).__name__ != "IntQuantTensor":
        raise ValueError(f"Brevitas layer {name}: quant_weight() gives a {type(qt).__name__}; only integer "
                         "quantization (IntQuantTensor) is read")
    value = qt.value.detach()
    shape = value.shape
    scale, zp = qt.scale.detach(), qt.zero_point.detach()
    axes = {a for a in (_channel_axis(scale, shape, "scale", name), _channel_axis(zp, shape, "zero-point", name))
            if a is not None}
    if len(axes) > 1:
        raise ValueError(f"Brevitas layer {name}: scale and zero-point vary along different axes")
    axis = axes.pop() if axes else None
    n = 1 if axis is None else shape[axis]
    scale = scale.reshape(-1).expand(n) if scale.numel() == 1 else scale.reshape(-1)
    zp = zp.reshape(-1)
    if not torch.equal(zp, zp.round()):
        raise ValueError(f"Brevitas layer {name}: zero-point {zp[:4].tolist()} is not an integer; its codes "
                         "cannot be stored as integers with an integer zero-point")
    bw = float(qt.bit_width)
    if bw != round(bw) or bw < 1:
        raise ValueError(f"Brevitas layer {name}: bit width {bw} is not a whole number of bits")
    bits = int(round(bw))
    # the codes as floats first: int() casts to int8 before one could see an overflow
    codes = qt.int(float_datatype=True).detach().round().to(torch.int64)
    lo, hi = (-(2 ** (bits - 1)), 2 ** (bits - 1) - 1) if bool(qt.signed) else (0, 2 ** bits - 1)
    if bits == 1 and bool(qt.signed):  # Brevitas binary weights are the signs -1, +1
        lo, hi = -1, 1
        if bool((codes == 0).any()):
            raise ValueError(f"Brevitas layer {name}: a 1-bit signed layer holds a zero code")
    if codes.numel() and (int(codes.min()) < lo or int(codes.max()) > hi):
        raise ValueError(f"Brevitas layer {name}: codes in [{int(codes.min())}, {int(codes.max())}] do not fit "
                         f"{bits} {'signed' if bool(qt.signed) else 'unsigned'} bits")
    layer = LayerCodes(name, kind, codes, scale, zp, bits, axis=axis, param_id=id(m.weight))
    # (codes - zero-point) * scale must give back the value the layer computes with
    step = layer._along_axis(layer.scale).float()
    if not bool(((layer.dequantize() - value.cpu().float()).abs() <= 1e-3 * step + 1e-12).all()):
        raise ValueError(f"Brevitas layer {name}: codes, scale and zero-point do not reproduce quant_weight().value")
    return layer


def _eligible_layers(model: nn.Module) -> list[tuple[str, nn.Module]]:
    out = []
    for name, m in model.named_modules():
        if not _weight_quantized(m):
            continue
        if _kind(m) is None:  # refuse rather than count its weight as fp32
            raise ValueError(f"Brevitas layer {name or '(root)'} ({type(m).__name__}) quantizes its weights, but "
                             f"only {', '.join(_LAYERS)} are read")
        out.append((name, m))
    return out


def _kind(m: nn.Module) -> str | None:
    for cls in type(m).__mro__:
        if cls.__module__.split(".")[0] == "brevitas" and cls.__name__ in _LAYERS:
            return _LAYERS[cls.__name__][0]
    return None


def _float_elems(model: nn.Module, layers: list[LayerCodes]) -> int:
    """Float parameters outside the codes: a learned weight scale or zero-point lives in the
    layer's weight quantizer and is already counted with the codes, so it is left out here."""
    skip = {c.param_id for c in layers}
    for _, m in _eligible_layers(model):
        skip.update(id(p) for p in m.weight_quant.parameters())
    n = sum(p.numel() for p in model.parameters() if id(p) not in skip)
    n += sum(b.numel() for k, b in model.named_buffers()
             if b.is_floating_point() and k.endswith(("running_mean", "running_var")))
    return n


@register_reader(READER, "brevitas", detect=_detect, eligible=ELIGIBLE,
                 float_elems=_float_elems)
@torch.no_grad()
def read(model: nn.Module) -> list[LayerCodes]:
    return [_layer_codes(name or "(root)", _kind(m), m) for name, m in _eligible_layers(model)]


class _FrozenTensorQuant(nn.Module):
    """Stands in for a weight proxy's ``tensor_quant``: its outputs (value, scale, zero-point,
    bit width ...) computed once, so the layer keeps its input/bias/output quantization while
    the weight is no longer re-quantized on each forward."""

    def __init__(self, outputs: tuple[torch.Tensor, ...]):
        super().__init__()
        self.n = len(outputs)
        for i, t in enumerate(outputs):
            self.register_buffer(f"out{i}", t.detach().clone())

    def forward(self, x, *args):
        return tuple(getattr(self, f"out{i}") for i in range(self.n))


def _plain_layer(m: nn.Module) -> nn.Module | None:
    """The torch layer computing what ``m`` computes, or None where ``m`` does more than quantize
    its weight (input/output/bias-from-input-scale quantization, QuantTensor outputs)."""
    cls = type(m).__name__
    if type(m).__module__.split(".")[0] != "brevitas" or cls not in _LAYERS:
        return None  # a subclass may override forward
    if (m.input_quant.is_quant_enabled or m.output_quant.is_quant_enabled or m.return_quant_tensor
            or m.weight_quant.requires_quant_input or getattr(m, "is_same_padded_strided", False)
            or getattr(m, "export_mode", False)):
        return None
    bias = None
    if m.bias is not None:
        if not m.bias_quant.is_quant_enabled:
            bias = m.bias.detach().clone()
        elif not m.bias_quant.requires_input_scale:
            bias = m.quant_bias().value.detach().clone()
        else:
            return None
    weight = m.quant_weight().value.detach().clone()
    kw = dict(bias=bias is not None, device=weight.device, dtype=weight.dtype)
    if cls == "QuantLinear":
        layer = nn.Linear(m.in_features, m.out_features, **kw)
    else:
        layer = _LAYERS[cls][1](m.in_channels, m.out_channels, m.kernel_size, stride=m.stride,
                                padding=m.padding, dilation=m.dilation, groups=m.groups,
                                padding_mode=m.padding_mode, **kw)
    layer.weight = nn.Parameter(weight, requires_grad=m.weight.requires_grad)
    if bias is not None:
        layer.bias = nn.Parameter(bias, requires_grad=m.bias.requires_grad)
    return layer.train(m.training)


def _freeze_weight_quant(m: nn.Module) -> bool:
    proxy = m.weight_quant
    if (type(proxy).__name__ not in _FREEZABLE_PROXIES or proxy.requires_quant_input
            or len(proxy.tracked_module_list) != 1 or getattr(proxy, "export_mode", False)):
        return False  # a shared proxy quantizes several weights: one frozen output would be wrong
    out = proxy.tensor_quant(m.weight)
    if not isinstance(out, tuple) or not all(isinstance(t, torch.Tensor) for t in out):
        return False
    proxy.tensor_quant = _FrozenTensorQuant(out)
    return True


def _set_submodule(root: nn.Module, name: str, module: nn.Module) -> None:
    parent, _, leaf = name.rpartition(".")
    setattr(root.get_submodule(parent) if parent else root, leaf, module)


def _count(c: Counter) -> str:
    parts = [f"{n} {cls}" for cls, n in sorted(c.items())]
    return parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]


@torch.no_grad()
def materialise(model: nn.Module, *, atol: float = 1e-4) -> Materialised:
    """A copy of ``model`` with each quantized weight computed once: a layer that quantizes only
    its weight becomes a plain torch layer holding ``quant_weight().value``; one that also
    quantizes its input, output or bias keeps that, with its weight quantizer's output cached;
    any other is left as it is. The engine checks the copy's logits against ``model``'s."""
    if isinstance(model, Materialised):
        return model
    fast = copy.deepcopy(model)
    replaced, frozen, kept = Counter(), Counter(), Counter()
    for name, m in [(n, m) for n, m in fast.named_modules() if _weight_quantized(m)]:
        plain = _plain_layer(m)
        if plain is not None:
            if name:
                _set_submodule(fast, name, plain)
            else:
                fast = plain
            replaced[type(m).__name__] += 1
        elif _freeze_weight_quant(m):
            frozen[type(m).__name__] += 1
        else:
            kept[type(m).__name__] += 1
    how = []
    if replaced:
        how.append(f"{_count(replaced)} replaced by float layers holding quant_weight().value")
    if frozen:
        how.append(f"{_count(frozen)} kept (input/output/bias quantization) with the weight quantizer's "
                   "output computed once")
    if kept:
        how.append(f"{_count(kept)} left as they are (weight quantization that depends on the input or "
                   "is shared)")
    return Materialised(fast, model, how="; ".join(how) or "no quantized Brevitas weight to materialise",
                        atol=atol)
