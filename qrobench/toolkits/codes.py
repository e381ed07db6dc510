"""Deployed weights as a toolkit stores them: integer codes, scales and zero-points per layer.

A quantized network's size, bit-width and sparsity are properties of the codes it ships, so
they are read from the toolkit's own quantization metadata (Brevitas ``quant_weight()``,
torch.ao packed weights, ONNX initializers), never guessed from distinct float values. Scales
and zero-points may be per tensor or per output channel; a weight is zero where its code
equals its zero-point.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

FP32_BYTES = 4


@dataclass
class LayerCodes:
    name: str
    kind: str  # "conv" | "linear"
    codes: torch.Tensor  # integer codes, in the weight's shape (out, in, ...)
    scale: torch.Tensor  # 0-d (per tensor) or 1-d along ``axis`` (per channel)
    zero_point: torch.Tensor  # integers, the shape of ``scale``
    bits: int  # storage width of one code
    axis: int | None = None  # the per-channel axis (None: per tensor)
    param_id: int | None = None  # id() of a float parameter these codes stand for (not counted twice)

    def __post_init__(self):
        self.codes = self.codes.detach().cpu().to(torch.int64)
        self.scale = self.scale.detach().cpu().to(torch.float64).reshape(-1)
        self.zero_point = self.zero_point.detach().cpu().to(torch.int64).reshape(-1)
        if self.scale.numel() == 1:
            self.axis = None
        elif self.axis is None or self.scale.numel() != self.codes.shape[self.axis]:
            raise ValueError(f"layer {self.name}: {self.scale.numel()} scales do not match axis {self.axis} "
                             f"of a weight of shape {tuple(self.codes.shape)}")
        if self.zero_point.numel() == 1 and self.scale.numel() > 1:
            self.zero_point = self.zero_point.expand(self.scale.numel()).clone()

    def _along_axis(self, t: torch.Tensor) -> torch.Tensor:
        if self.axis is None:
            return t.reshape(())
        shape = [1] * self.codes.dim()
        shape[self.axis] = -1
        return t.reshape(shape)

    def dequantize(self) -> torch.Tensor:
        zp, s = self._along_axis(self.zero_point), self._along_axis(self.scale)
        return ((self.codes - zp).to(torch.float64) * s).to(torch.float32)

    @property
    def zeros(self) -> torch.Tensor:
        """Where the deployed weight is exactly zero: the code equals its zero-point."""
        return self.codes == self._along_axis(self.zero_point)

    @property
    def symmetric(self) -> bool:
        return bool((self.zero_point == 0).all())

    @property
    def levels(self) -> int:
        return int(torch.unique(self.codes).numel())

    def precision_token(self) -> str:
        if self.bits == 1:
            return "bnn"
        if self.bits == 2 and self.levels <= 3:
            return "tnn"
        return f"{self.bits}bit"

    def packed_bits(self) -> int:
        """Codes at their width, one fp32 per scale, zero-points at the code width when any is
        not zero (a symmetric layer stores none), each part rounded up to whole bytes."""
        size = math.ceil(self.codes.numel() * self.bits / 8) * 8 + 8 * FP32_BYTES * self.scale.numel()
        if not self.symmetric:
            size += math.ceil(self.zero_point.numel() * self.bits / 8) * 8
        return size

    def granularity(self) -> str:
        return "per-tensor" if self.axis is None else f"per-channel (axis {self.axis})"


def bits_of_dtype(dtype) -> int:
    """Storage width of an integer code dtype (torch or numpy)."""
    name = str(dtype).replace("torch.", "")
    for token, bits in (("int4", 4), ("int8", 8), ("qint8", 8), ("quint8", 8), ("uint8", 8), ("int16", 16),
                        ("uint16", 16), ("int32", 32), ("qint32", 32)):
        if name == token:
            return bits
    raise ValueError(f"{dtype} is not an integer code type")
