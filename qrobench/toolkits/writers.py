"""Writing integer codes back where a deployed toolkit model reads them.

The weight threats (qrobench/threats) hit the words a model stores. For a toolkit model those
are the codes its reader reads (readers.py); each toolkit's writer puts new codes in the same
place, in the toolkit's own integer type, so that the toolkit's runtime computes every outcome
with them: torch.ao repacks the quantized weight (its scales and zero-points unchanged), ONNX
edits the integer initializer and reopens the session, and a materialised Brevitas model holds
(code − zero-point) × scale in its fast copy. Scales, zero-points and biases are not written.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn as nn

from ..errors import QrobenchError
from .codes import LayerCodes
from .deployed import Materialised
from .formats import find_reader
from .readers import unwrap


@dataclass
class CodeSink:
    """One layer's stored codes as read, whether they are signed, and how to write new ones."""

    codes: LayerCodes
    signed: bool
    module: nn.Module  # what is written to (for the record of which module was hit)
    write: Callable[[torch.Tensor], None]  # integer codes, in the layout of ``codes.codes``
    narrow: bool | None = None  # signed codes kept off −2^(bits−1) by the quantizer (None: not recorded)


@dataclass(frozen=True)
class Writer:
    format: str  # the reader format it writes (readers.py)
    label: str  # the toolkit and where its codes live, for the result record
    sinks: Callable[[nn.Module], list[CodeSink]]


WRITERS: dict[str, Writer] = {}


def register_writer(format: str, label: str):
    def wrap(sinks):
        WRITERS[format] = Writer(format, label, sinks)
        return sinks
    return wrap


def writable(model: nn.Module) -> nn.Module:
    """The module whose forward computes with written codes: a Brevitas model re-quantizes its
    float weights on every forward (its scale follows the weights), so it is materialised
    first and the codes are written into the copy; any other model is itself."""
    reader = find_reader(model)
    if reader is not None and reader.format == "brevitas" and not isinstance(model, Materialised):
        from .brevitas_models import materialise

        return materialise(model)
    return model


def code_sinks(model: nn.Module) -> tuple[list[CodeSink], str] | None:
    """(a sink per stored layer, what they are) for a toolkit model; None for any other."""
    reader = find_reader(model)
    if reader is None:
        return None
    writer = WRITERS.get(reader.format)
    if writer is None:
        raise QrobenchError(f"writing the stored codes of a {reader.format} model is not supported; "
                            f"supported: {', '.join(sorted(WRITERS))}")
    return writer.sinks(model), writer.label


# -- torch.ao: the packed quantized weights ---------------------------------------------------------

def _torch_ao_sink(c: LayerCodes, m: nn.Module) -> CodeSink:
    w, bias = m.weight(), m.bias()
    int_type = w.int_repr().dtype
    if c.axis is None:
        scale, zero_point = w.q_scale(), w.q_zero_point()

        def make(q):
            return torch._make_per_tensor_quantized_tensor(q, scale, zero_point)
    else:
        scales, zero_points, axis = w.q_per_channel_scales(), w.q_per_channel_zero_points(), w.q_per_channel_axis()

        def make(q):
            return torch._make_per_channel_quantized_tensor(q, scales, zero_points, axis)

    def write(codes: torch.Tensor) -> None:
        m.set_weight_bias(make(codes.to(int_type)), bias)  # repacks for the quantized engine

    return CodeSink(c, w.dtype == torch.qint8, m, write)


@register_writer("torch-ao", "torch.ao int8 kernels, packed weights")
def torch_ao_sinks(model: nn.Module) -> list[CodeSink]:
    from .torch_int8 import read_torch_ao

    root = unwrap(model)
    modules = dict(root.named_modules())
    return [_torch_ao_sink(c, modules[c.name]) for c in read_torch_ao(root)]


# -- ONNX: the integer initializers -----------------------------------------------------------------

@register_writer("onnx", "ONNX Runtime, integer initializers")
def onnx_sinks(model: nn.Module) -> list[CodeSink]:
    from onnx import numpy_helper

    from .onnx_models import _INT_TYPES, read_onnx_codes, weight_sources

    session = unwrap(model)
    inits = {t.name: t for t in session.onnx_model.graph.initializer}
    sinks = []
    for c, src in zip(read_onnx_codes(session), weight_sources(session.onnx_model), strict=True):
        t = inits.get(src.codes)
        if t is None:
            raise QrobenchError(f"layer {c.name}: its codes are a Constant node, not an initializer; "
                                "only initializers are written")
        dtype = numpy_helper.to_array(t).dtype

        def write(codes: torch.Tensor, t=t, dtype=dtype, transpose=src.transpose) -> None:
            a = codes.numpy()
            t.CopyFrom(numpy_helper.from_array((a.T if transpose else a).astype(dtype), t.name))
            session.graph_changed()

        sinks.append(CodeSink(c, _INT_TYPES[t.data_type][1] < 0, session, write))
    return sinks


# -- Brevitas: the materialised copy's weights ------------------------------------------------------

def _brevitas_sink(c: LayerCodes, ref: nn.Module, fast: nn.Module) -> CodeSink:
    from .brevitas_models import _FrozenTensorQuant

    frozen = getattr(getattr(fast, "weight_quant", None), "tensor_quant", None)
    if isinstance(frozen, _FrozenTensorQuant):
        target = frozen.out0  # the cached quant_weight().value of a layer that also quantizes activations
    elif type(fast).__module__.startswith("torch.nn"):
        target = fast.weight  # a plain layer holding quant_weight().value
    else:
        raise QrobenchError(f"Brevitas layer {c.name} re-quantizes its weight on every forward (its quantizer "
                            "depends on the input or is shared), so written codes would not be used")

    def write(codes: torch.Tensor) -> None:
        with torch.no_grad():
            target.copy_(dataclasses.replace(c, codes=codes).dequantize().to(target.dtype))

    proxy = ref.weight_quant
    return CodeSink(c, bool(proxy.is_signed), fast, write, narrow=bool(proxy.is_narrow_range))


@register_writer("brevitas", "Brevitas quant_weight() codes, in the materialised copy")
def brevitas_sinks(model: nn.Module) -> list[CodeSink]:
    from .brevitas_models import _eligible_layers, read

    if not isinstance(model, Materialised):
        raise QrobenchError("a Brevitas model re-quantizes its float weights on every forward; write its codes "
                            "into its materialised copy (qrobench.toolkits.writers.writable(model))")
    if model.use_reference:
        raise QrobenchError("this Brevitas model runs its reference forward (the materialised copy failed its "
                            "check), which re-quantizes the float weights; its codes cannot be written")
    refs = dict(_eligible_layers(model.reference))
    return [_brevitas_sink(c, refs["" if c.name == "(root)" else c.name],
                           model.fast if c.name == "(root)" else model.fast.get_submodule(c.name))
            for c in read(model.reference)]

