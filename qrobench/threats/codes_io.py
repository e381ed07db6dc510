"""The stored weight words of a deployed model, read and written back in their own format.

Bit errors hit the memory that holds the weights, so they act on the stored words: a qrobench
layer's codes in sign-magnitude at the layer's bit width (the format its quantizer defines,
docs/protocol.md §4; binary is the sign bit alone), a float layer's IEEE-754 float32 words.
A float model may also be quantized post-training to int8 (per output channel, symmetric,
two's complement) so that it meets the same threat as the quantized ones, labelled so.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn

from ..errors import QrobenchError
from ..protocol import precision
from ..quant.layers import quantized_layers

SIGN_MAGNITUDE, TWOS_COMPLEMENT, FLOAT32 = "sign-magnitude", "twos-complement", "float32"
INT8_PTQ = "int8-ptq"  # a float model quantized to int8 post-training for this threat


@dataclass
class StoredLayer:
    """One layer's stored words: integer codes with their width and format (float32: the weight)."""

    name: str
    module: nn.Module
    words: torch.Tensor  # integer codes, or the float32 weight
    bits: int
    format: str
    scale: torch.Tensor | None = None  # dequantization scale, broadcastable to the weight

    def write(self, words: torch.Tensor) -> None:
        w = words.to(torch.float32) if self.format == FLOAT32 else words.to(torch.float32) * self.scale
        with torch.no_grad():
            self.module.weight.copy_(w.to(self.module.weight.dtype))


def stored_layers(model: nn.Module, float_as: str = INT8_PTQ) -> tuple[list[StoredLayer], str]:
    """(the stored layers, what they are) of a qrobench model: its quantized convs' codes; for
    a float model (no quantized layer), its eligible convs as int8 post-training codes
    (``float_as="int8-ptq"``) or as raw float32 words (``"float32"``). The layers' weights are
    set to exactly what the words encode, so the error-free model is the one measured."""
    layers = [(n, m) for n, m in quantized_layers(model)]
    if not layers:
        raise QrobenchError("bit errors act on qrobench models' stored codes (QuantConv2d layers); "
                            f"{type(model).__name__} has none")
    quantized = [(n, m) for n, m in layers if m.is_quantized]
    out = []
    if quantized:
        for n, m in quantized:
            q = m.deployed_codes()
            bits = precision(m.precision).bits
            out.append(StoredLayer(n, m, q.codes.to(torch.int64), bits, SIGN_MAGNITUDE, q.scale.float()))
        return out, f"deployed codes, sign-magnitude at each layer's bit width ({_widths(out)})"
    if float_as == FLOAT32:
        for n, m in layers:
            out.append(StoredLayer(n, m, m.weight.detach().clone().float(), 32, FLOAT32))
        return out, "float32 weights of the eligible convs (IEEE-754 words)"
    if float_as != INT8_PTQ:
        raise QrobenchError(f"float_as must be {INT8_PTQ} or {FLOAT32}, got {float_as!r}")
    for n, m in layers:
        w = m.weight.detach().float()
        scale = (w.abs().amax(dim=(1, 2, 3), keepdim=True) / 127).clamp_min(1e-12)
        codes = torch.round(w / scale).clamp(-127, 127).to(torch.int64)
        layer = StoredLayer(n, m, codes, 8, TWOS_COMPLEMENT, scale)
        layer.write(codes)
        out.append(layer)
    return out, "float model quantized post-training to int8 (per output channel, symmetric, two's complement)"


def _widths(layers) -> str:
    widths = sorted({layer.bits for layer in layers})
    return "/".join(map(str, widths)) + (" bits" if widths != [1] else " bit")


def encode(codes: torch.Tensor, bits: int, fmt: str) -> torch.Tensor:
    """Integer codes → the unsigned stored words."""
    if fmt == FLOAT32:
        return codes.contiguous().view(torch.int32).to(torch.int64) & 0xFFFFFFFF
    if fmt == TWOS_COMPLEMENT:
        return codes & ((1 << bits) - 1)
    if bits == 1:  # binary: the sign bit alone, 1 for +1
        return (codes > 0).to(torch.int64)
    return ((codes < 0).to(torch.int64) << (bits - 1)) | codes.abs()


def decode(words: torch.Tensor, bits: int, fmt: str) -> torch.Tensor:
    """The stored words → integer codes (or float32 values)."""
    if fmt == FLOAT32:
        signed = torch.where(words >= 2 ** 31, words - 2 ** 32, words)
        return signed.to(torch.int32).view(torch.float32)
    if fmt == TWOS_COMPLEMENT:
        return torch.where(words >= 1 << (bits - 1), words - (1 << bits), words)
    if bits == 1:
        return words * 2 - 1
    mag = words & ((1 << (bits - 1)) - 1)
    return torch.where((words >> (bits - 1)) & 1 == 1, -mag, mag)
