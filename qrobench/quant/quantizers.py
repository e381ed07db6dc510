"""Per-tensor weight quantizers (docs/protocol.md §4).

Each quantizer maps a float tensor to integer codes and one scale, so that the deployed
weight is ``codes * scale``; the codes are what a checkpoint stores and what the level
checks inspect.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch


@dataclass
class Quantized:
    codes: torch.Tensor  # int8, same shape as the weight
    scale: torch.Tensor  # float32 scalar

    def dequantize(self) -> torch.Tensor:
        return self.codes.to(self.scale.dtype) * self.scale


def binary(w: torch.Tensor) -> Quantized:
    """``a * sign(w)`` with ``a = mean|w|``; zeros map to +1 so exactly two values remain."""
    a = w.detach().abs().mean()
    codes = torch.where(w.detach() >= 0, 1, -1).to(torch.int8)
    return Quantized(codes, a.float())


TERNARY_CONVENTIONS = ("ref", "twn")


def ternary(w: torch.Tensor, convention: str = "ref") -> Quantized:
    """Threshold 0.7*mean|w|; scale = kept |w| sum over the TOTAL count ("ref", the authors'
    code) or over the kept count ("twn", TWN proper)."""
    if convention not in TERNARY_CONVENTIONS:
        raise ValueError(f"ternary convention must be one of {TERNARY_CONVENTIONS}")
    wd = w.detach()
    absw = wd.abs()
    delta = 0.7 * absw.mean()
    keep = absw >= delta
    kept_sum = (absw * keep).sum()
    denom = absw.numel() if convention == "ref" else keep.sum().clamp_min(1)
    s = kept_sum / denom
    codes = (torch.sign(wd) * keep).to(torch.int8)
    return Quantized(codes, s.float())


def fourbit(w: torch.Tensor) -> Quantized:
    """Sign-magnitude, 15 levels {-7..7}*s; level = round(|w| / 2δ) clipped to 7 with
    δ = max|w|/15, and the least-squares scale s = <|w|, k> / <k, k>."""
    return _sign_magnitude(w, 7)


def _sign_magnitude(w: torch.Tensor, kmax: int) -> Quantized:
    wd = w.detach()
    absw = wd.abs()
    delta = absw.max() / (2 * kmax + 1)
    if delta == 0:
        return Quantized(torch.zeros_like(wd, dtype=torch.int8), torch.zeros((), dtype=torch.float32))
    k = torch.clamp(torch.round(absw / (2 * delta)), max=kmax)
    kk = (k * k).sum()
    s = (absw * k).sum() / kk if kk > 0 else torch.zeros((), dtype=wd.dtype)
    codes = (torch.sign(wd) * k).to(torch.int8)
    return Quantized(codes, s.float())


def kbit(bits: int) -> Callable[[torch.Tensor], Quantized]:
    """The 4-bit rule generalised to b bits (2^b - 1 symmetric levels), for mixed precision."""
    if not 2 <= bits <= 8:
        raise ValueError("kbit supports 2..8 bits")
    kmax = 2 ** (bits - 1) - 1
    return lambda w: _sign_magnitude(w, kmax)


QUANTIZERS: dict[str, Callable[..., Quantized]] = {"bnn": binary, "tnn": ternary, "4bit": fourbit}


def get_quantizer(precision: str, ternary_convention: str = "ref") -> Callable[[torch.Tensor], Quantized]:
    if precision == "tnn":
        return lambda w: ternary(w, ternary_convention)
    if precision in QUANTIZERS:
        return QUANTIZERS[precision]
    if precision.endswith("bit") and precision[:-3].isdigit():
        return kbit(int(precision[:-3]))
    raise ValueError(f"no quantizer for precision {precision!r}; valid: bnn, tnn, 4bit, <b>bit")
