"""Sparsity, channel sparsity and deployed size (PROTOCOL.md section 5), read from the weights."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
import torch.nn as nn

from .layers import quantized_layers
from .quantizers import bits_of


@dataclass
class QuantStats:
    sparsity: float  # zero weights / all weights over the quantization-eligible convs
    channel_sparsity: float  # all-zero input-channel slices / all slices
    zero_channels: int
    total_channels: int
    n_params: int
    size_bytes: int  # deployed size, packed at the true bit-width
    fp32_bytes: int
    compression: float

    def as_dict(self) -> dict:
        return asdict(self)


@torch.no_grad()
def quant_stats(model: nn.Module) -> QuantStats:
    zeros = total = zero_ch = total_ch = 0
    qparams: set[int] = set()
    size_bits = 0
    for _, m in quantized_layers(model):
        w = m.weight
        zeros += int((w == 0).sum())
        total += w.numel()
        per_slice_nonzero = (w != 0).sum(dim=(0, 2, 3))
        zero_ch += int((per_slice_nonzero == 0).sum())
        total_ch += w.shape[1]
        if m.is_quantized:
            qparams.add(id(m.weight))
            size_bits += math.ceil(w.numel() * bits_of(m.precision) / 8) * 8 + 32  # codes + scale
    fp_elems = 0
    n_params = 0
    for p in model.parameters():
        n_params += p.numel()
        if id(p) not in qparams:
            fp_elems += p.numel()
    for name, b in model.named_buffers():
        if b.is_floating_point() and name.endswith(("running_mean", "running_var")):
            fp_elems += b.numel()
    size_bytes = size_bits // 8 + 4 * fp_elems
    fp32_bytes = 4 * (fp_elems + sum(model.get_parameter(n).numel() for n in _qparam_names(model)))
    return QuantStats(
        sparsity=zeros / total if total else 0.0,
        channel_sparsity=zero_ch / total_ch if total_ch else 0.0,
        zero_channels=zero_ch,
        total_channels=total_ch,
        n_params=n_params,
        size_bytes=size_bytes,
        fp32_bytes=fp32_bytes,
        compression=fp32_bytes / size_bytes if size_bytes else 1.0,
    )


def _qparam_names(model: nn.Module) -> list[str]:
    return [f"{n}.weight" if n else "weight" for n, m in quantized_layers(model) if m.is_quantized]
