"""Weight statistics of any model, quantized by qrobench or by a toolkit or not at all.

Submitted architectures are arbitrary ``nn.Module``s: their bit-width, sparsity and size
must be measured, never copied from a card. Toolkit models (Brevitas, torch.ao int8, ONNX)
are measured from the codes, scales and zero-points their toolkit deploys
(``qrobench/toolkits``); qrobench models (QuantConv2d layers) from their declared precision,
equal to :func:`qrobench.quant.metrics.quant_stats`; for any other model every ``nn.Conv2d``
is eligible and a layer's bit-width is inferred from its distinct values (the fallback). The
record says which reader was used.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import torch
import torch.nn as nn

from ..protocol import FLOAT_BITS, MIXED, precision
from .layers import QuantConv2d

MAX_CODE = 127  # int8 codes: a layer on a finer grid than this is treated as float


@dataclass
class WeightStats:
    sparsity: float  # zero weights / all weights over the eligible convs
    channel_sparsity: float  # all-zero input-channel slices / all slices
    zero_channels: int
    total_channels: int
    n_params: int
    size_bytes: int  # packed at each layer's bit-width, fp32 for everything else
    fp32_bytes: int
    compression: float
    bits: float  # average bits per eligible conv weight, weighted by layer size
    precision: str  # fp | bnn | tnn | 4bit | <b>bit | mixed
    eligible: str  # which layers were measured
    layer_bits: dict[str, int] = field(default_factory=dict)
    reader: str = "qrobench layers"  # where the codes came from (toolkit metadata, or inferred)

    def as_dict(self) -> dict:
        return asdict(self)


def _grid_levels(w: torch.Tensor) -> int | None:
    """Number of distinct values if ``w`` is integer codes times one scale, else None."""
    distinct = torch.unique(w.detach().float().cpu())
    if len(distinct) > 2 * MAX_CODE + 1:
        return None
    nz = distinct[distinct != 0].abs()
    if len(nz) == 0:
        return len(distinct)
    for d in range(1, 9):  # the smallest code need not be 1 (e.g. a 4-bit layer without ±1)
        k = distinct / (nz.min() / d)
        if k.abs().max() <= MAX_CODE and torch.allclose(k, k.round(), atol=1e-3, rtol=0):
            return len(distinct)
    return None


def infer_bits(w: torch.Tensor) -> tuple[int, str]:
    """(bits, precision token) of one weight tensor from its values: 2 values → 1 bit (bnn),
    3 → 2 bits (tnn), up to 2^b − 1 or 2^b → b bits; off an integer grid → float32."""
    levels = _grid_levels(w)
    if levels is None:
        return FLOAT_BITS, "fp"
    bits = max(1, math.ceil(math.log2(max(levels, 1))))
    if bits == 1:
        return 1, "bnn"
    if levels <= 3:
        return 2, "tnn"
    return bits, f"{bits}bit"


def _eligible(model: nn.Module) -> tuple[list[tuple[str, nn.Conv2d]], str]:
    q = [(n, m) for n, m in model.named_modules() if isinstance(m, QuantConv2d)]
    if q:
        return q, "qrobench quantizable convs (stem and 3x3 block convs)"
    return [(n, m) for n, m in model.named_modules() if isinstance(m, nn.Conv2d)], "every nn.Conv2d"


def _layer_bits(m: nn.Conv2d) -> tuple[int, str]:
    if isinstance(m, QuantConv2d):  # declared, and checked against the codes when loaded
        return (precision(m.precision).bits, m.precision) if m.is_quantized else (FLOAT_BITS, "fp")
    return infer_bits(m.weight)


def _precision_token(tokens: list[str]) -> str:
    if not tokens:
        return "fp"
    return tokens[0] if len(set(tokens)) == 1 else MIXED


def _stats_from_codes(model: nn.Module, reader, layers) -> WeightStats:
    from ..toolkits.codes import FP32_BYTES
    from ..toolkits.formats import unwrap

    zeros = total = zero_ch = total_ch = size_bits = weighted_bits = 0
    layer_bits, tokens = {}, []
    for c in layers:
        z = c.zeros
        zeros += int(z.sum())
        total += z.numel()
        if z.dim() >= 2:
            dims = tuple(d for d in range(z.dim()) if d != 1)
            zero_ch += int((z.all(dim=dims) if dims else z).sum())
            total_ch += z.shape[1]
        layer_bits[c.name] = c.bits
        tokens.append(c.precision_token())
        weighted_bits += c.bits * z.numel()
        size_bits += c.packed_bits()
    target = unwrap(model)
    if reader.float_elems is not None:
        fp_elems = reader.float_elems(target, layers)
    else:
        coded = {c.param_id for c in layers}
        fp_elems = sum(p.numel() for p in target.parameters() if id(p) not in coded)
        fp_elems += sum(b.numel() for n, b in target.named_buffers()
                        if b.is_floating_point() and n.endswith(("running_mean", "running_var")))
    size_bytes = size_bits // 8 + FP32_BYTES * fp_elems
    fp32_bytes = FP32_BYTES * (fp_elems + total)
    return WeightStats(
        sparsity=zeros / total if total else 0.0,
        channel_sparsity=zero_ch / total_ch if total_ch else 0.0,
        zero_channels=zero_ch, total_channels=total_ch, n_params=fp_elems + total,
        size_bytes=size_bytes, fp32_bytes=fp32_bytes,
        compression=fp32_bytes / size_bytes if size_bytes else 1.0,
        bits=weighted_bits / total if total else float(FLOAT_BITS),
        precision=_precision_token(tokens), eligible=reader.eligible, layer_bits=layer_bits,
        reader=reader.name)


@torch.no_grad()
def measure_weights(model: nn.Module) -> WeightStats:
    from ..toolkits.formats import read_codes, unwrap

    found = read_codes(model)
    if found is not None:
        return _stats_from_codes(model, *found)
    model = unwrap(model)
    layers, eligible = _eligible(model)
    zeros = total = zero_ch = total_ch = 0
    size_bits = weighted_bits = 0
    packed: set[int] = set()
    layer_bits, tokens = {}, []
    for name, m in layers:
        w = m.weight
        zeros += int((w == 0).sum())
        total += w.numel()
        zero_ch += int(((w != 0).sum(dim=(0, 2, 3)) == 0).sum())
        total_ch += w.shape[1]
        bits, token = _layer_bits(m)
        layer_bits[name] = bits
        tokens.append(token)
        weighted_bits += bits * w.numel()
        if bits < FLOAT_BITS:
            packed.add(id(m.weight))
            size_bits += math.ceil(w.numel() * bits / 8) * 8 + 32  # codes + one fp32 scale
    n_params = fp_elems = all_elems = 0
    for p in model.parameters():
        n_params += p.numel()
        all_elems += p.numel()
        if id(p) not in packed:
            fp_elems += p.numel()
    for name, b in model.named_buffers():
        if b.is_floating_point() and name.endswith(("running_mean", "running_var")):
            fp_elems += b.numel()
            all_elems += b.numel()
    size_bytes = size_bits // 8 + 4 * fp_elems
    fp32_bytes = 4 * all_elems
    return WeightStats(
        sparsity=zeros / total if total else 0.0,
        channel_sparsity=zero_ch / total_ch if total_ch else 0.0,
        zero_channels=zero_ch,
        total_channels=total_ch,
        n_params=n_params,
        size_bytes=size_bytes,
        fp32_bytes=fp32_bytes,
        compression=fp32_bytes / size_bytes if size_bytes else 1.0,
        bits=weighted_bits / total if total else float(FLOAT_BITS),
        precision=_precision_token(tokens),
        eligible=eligible,
        layer_bits=layer_bits,
        reader="qrobench layers (declared precision, checked against the codes)" if eligible.startswith("qrobench")
        else "distinct values (plain float modules: bit-width inferred from the values)",
    )


@torch.no_grad()
def layer_table(model: nn.Module) -> list[dict]:
    """Per eligible conv: bit-width, sparsity and zero input channels (``W[:, c]`` all zero), in
    network order, so a report can show where a model's zeros and zero channels sit. Toolkit
    models: from their codes (a zero is a code at its zero-point)."""
    from ..toolkits.formats import read_codes, unwrap

    found = read_codes(model)
    if found is not None:
        return [_code_row(c) for c in found[1]]
    model = unwrap(model)
    layers, _ = _eligible(model)
    rows = []
    for name, m in layers:
        w = m.weight
        bits, token = _layer_bits(m)
        per_channel = (w == 0).float().mean(dim=(0, 2, 3))  # zero fraction of each W[:, c]
        zero_ch = int((per_channel == 1).sum())
        rows.append({"layer": name, "shape": list(w.shape), "precision": token, "bits": bits,
                     "weights": w.numel(), "zeros": int((w == 0).sum()),
                     "sparsity": float((w == 0).float().mean()), "channels": int(w.shape[1]),
                     "zero_channels": zero_ch, "channel_sparsity": zero_ch / w.shape[1],
                     "max_channel_zero_frac": float(per_channel.max())})  # how near a zero channel
    return rows


def _code_row(c) -> dict:
    z = c.zeros
    dims = tuple(d for d in range(z.dim()) if d != 1)
    per_channel = z.float().mean(dim=dims) if z.dim() >= 2 else z.float()
    zero_ch = int((per_channel == 1).sum())
    channels = int(z.shape[1]) if z.dim() >= 2 else 1
    return {"layer": c.name, "shape": list(z.shape), "precision": c.precision_token(), "bits": c.bits,
            "weights": z.numel(), "zeros": int(z.sum()), "sparsity": float(z.float().mean()),
            "channels": channels, "zero_channels": zero_ch, "channel_sparsity": zero_ch / channels,
            "max_channel_zero_frac": float(per_channel.max()), "scales": c.granularity(),
            "symmetric": c.symmetric}
