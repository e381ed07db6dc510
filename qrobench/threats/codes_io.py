"""The stored weight words of a deployed model, read and written back in their own format.

Bit errors hit the memory that holds the weights, so they act on the stored words: a qrobench
layer's codes in sign-magnitude at the layer's bit width (the format its quantizer defines,
docs/protocol.md §4; binary is the sign bit alone), a float layer's IEEE-754 float32 words.
A float model may also be quantized post-training to int8 (per output channel, symmetric,
two's complement) so that it meets the same threat as the quantized ones, labelled so.
A toolkit model's words are the codes its runtime reads, in the toolkit's integer type (two's
complement when signed, plain binary when unsigned), written back by the toolkit's writer
(qrobench/toolkits/writers.py) so that the toolkit's kernels compute with them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn as nn

from ..errors import QrobenchError
from ..protocol import precision
from ..quant.layers import quantized_layers
from ..toolkits.formats import model_format
from ..toolkits.writers import code_sinks

SIGN_MAGNITUDE, TWOS_COMPLEMENT, FLOAT32 = "sign-magnitude", "twos-complement", "float32"
UNSIGNED = "unsigned"  # a toolkit's unsigned codes (uint8 ...), stored as plain binary
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
    sink: Callable[[torch.Tensor], None] | None = None  # a toolkit's writer of integer codes
    original: torch.Tensor | None = None  # the module's weight before the words were first written

    def write(self, words: torch.Tensor) -> None:
        if self.sink is not None:
            self.sink(words)
            return
        w = words.to(torch.float32) if self.format == FLOAT32 else words.to(torch.float32) * self.scale
        with torch.no_grad():
            if self.original is None:
                self.original = self.module.weight.detach().clone()
            self.module.weight.copy_(w.to(self.module.weight.dtype))

    def put_back(self) -> None:
        """The caller's weight as it came, not its codes' dequantized values: a float model's
        int8 post-training codes would otherwise stay in the model after the threat."""
        if self.sink is not None:
            self.sink(self.words)  # a toolkit's codes are its weights
        elif self.original is not None:
            with torch.no_grad():
                self.module.weight.copy_(self.original)


def put_back(layers: list[StoredLayer]) -> None:
    for layer in layers:
        layer.put_back()


def stored_layers(model: nn.Module, float_as: str = INT8_PTQ, *,
                  toolkits: bool = False) -> tuple[list[StoredLayer], str]:
    """(the stored layers, what they are) of a qrobench model: its quantized convs' codes; for
    a float model (no quantized layer), its eligible convs as int8 post-training codes
    (``float_as="int8-ptq"``) or as raw float32 words (``"float32"``). The layers' weights are
    set to exactly what the words encode, so the error-free model is the one measured.
    With ``toolkits``, a toolkit model (torch.ao, ONNX, materialised Brevitas) gives the codes
    its runtime reads; without, it is refused (its weights have no gradient to search)."""
    found = code_sinks(model)
    if found is not None:
        if not toolkits:
            raise QrobenchError(f"a {model_format(model)} model's stored codes are hit by --threat-model bit-errors "
                                "only: the bit-flip search needs the weights' gradients, which its kernels do not give")
        return _toolkit_layers(*found)
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


_WORDS = {TWOS_COMPLEMENT: "two's complement", UNSIGNED: "unsigned", SIGN_MAGNITUDE: "sign bit (binary)"}


def _toolkit_layers(sinks, label: str) -> tuple[list[StoredLayer], str]:
    """A toolkit's codes as stored words: signed codes in two's complement at their width (a
    signed 1-bit code, ±1, is its sign bit), unsigned codes as plain binary."""
    out = []
    for s in sinks:
        c = s.codes
        fmt = UNSIGNED if not s.signed else SIGN_MAGNITUDE if c.bits == 1 else TWOS_COMPLEMENT
        out.append(StoredLayer(c.name, s.module, c.codes.clone(), c.bits, fmt, sink=s.write))
    widths = "/".join(str(b) for b in sorted({layer.bits for layer in out}))
    grains = " and ".join(sorted({"per-tensor" if s.codes.axis is None else "per-channel" for s in sinks}))
    words = " / ".join(_WORDS[f] for f in sorted({layer.format for layer in out}))
    narrow = {s.narrow for s in sinks}
    top = sorted({2 ** (layer.bits - 1) for layer in out if layer.format == TWOS_COMPLEMENT})
    if narrow == {True} and len(top) == 1:
        words += f", narrow range −{top[0] - 1}..{top[0] - 1} (an error can give −{top[0]})"
    elif narrow == {True} and top:
        words += ", narrow range (an error can give −2^(b−1))"
    elif narrow == {False}:
        words += ", full range"
    zp = "zero-point 0" if all(s.codes.symmetric for s in sinks) else "stored zero-points (not hit)"
    return out, f"deployed {widths}-bit codes ({label}, {grains}, {words}, {zp}; {len(out)} layers)"


def _widths(layers) -> str:
    widths = sorted({layer.bits for layer in layers})
    return "/".join(map(str, widths)) + (" bits" if widths != [1] else " bit")


def encode(codes: torch.Tensor, bits: int, fmt: str) -> torch.Tensor:
    """Integer codes → the unsigned stored words."""
    if fmt == FLOAT32:
        return codes.contiguous().view(torch.int32).to(torch.int64) & 0xFFFFFFFF
    if fmt in (TWOS_COMPLEMENT, UNSIGNED):
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
    if fmt == UNSIGNED:
        return words
    if bits == 1:
        return words * 2 - 1
    mag = words & ((1 << (bits - 1)) - 1)
    return torch.where((words >> (bits - 1)) & 1 == 1, -mag, mag)
