"""Per-tensor weight quantizers (docs/protocol.md §4), registered by precision token.

Each quantizer maps a float tensor to integer codes and one scale, so that the deployed
weight is ``codes * scale``; the codes are what a checkpoint stores and what the level
checks inspect. A registry entry carries the promise the checkpoint loader relies on (at
most ``levels`` distinct codes, all within ``code_range``), taken from ``protocol.precision``
so the rule that writes codes and the check that reads them cannot disagree;
tests/quant/test_quantizer_registry.py holds every entry to it.

A new quantizer is one decorated function here (and its token in ``protocol.py`` if it is
a new precision)::

    @register_quantizer("2bit-asym", levels=4, code_range=(-2, 1))
    def asymmetric2(w: torch.Tensor) -> Quantized: ...
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import torch

from ..errors import UnknownNameError
from ..protocol import precision as precision_of
from ..registry import Registry


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


@dataclass(frozen=True)
class QuantizerSpec:
    """A registered quantizer: its precision token, its rule, and what its codes may be.

    ``options``: keyword arguments the rule takes besides the weight (``convention`` for
    ternary), passed by :func:`get_quantizer`. Calling the spec calls the rule, so
    ``QUANTIZERS[token](w)`` works as it did when ``QUANTIZERS`` held bare functions."""

    token: str
    fn: Callable[..., Quantized]
    levels: int
    code_range: tuple[int, int]
    options: tuple[str, ...] = ()

    def __call__(self, w: torch.Tensor, **options) -> Quantized:
        return self.fn(w, **options)


QUANTIZER_REGISTRY: Registry[QuantizerSpec] = Registry("quantizer")


def register_quantizer(token: str, *, levels: int | None = None, code_range: tuple[int, int] | None = None,
                       options: tuple[str, ...] = ()):
    """Register ``fn(w, **options) -> Quantized`` as the quantizer of precision ``token``.

    ``levels`` and ``code_range`` default to ``protocol.precision(token)``'s; given for a
    token the protocol knows, they must agree with it (the loader checks checkpoints with
    the protocol's numbers, so a disagreement would reject the quantizer's own output)."""

    def deco(fn):
        try:
            p = precision_of(token)
        except ValueError:
            p = None
        if p is not None and p.is_float:
            raise ValueError(f"precision {token!r} is float: it has no quantizer")
        lv = p.levels if levels is None and p is not None else levels
        cr = p.code_range if code_range is None and p is not None else code_range
        if lv is None or cr is None:
            raise ValueError(f"quantizer {token!r} is no protocol precision: give levels and code_range")
        if p is not None and (lv, tuple(cr)) != (p.levels, p.code_range):
            raise ValueError(f"quantizer {token!r}: levels {lv} and code range {tuple(cr)} disagree with "
                             f"protocol.precision ({p.levels}, {p.code_range})")
        lo, hi = cr
        if not (-128 <= lo <= hi <= 127) or lv < 2 or lv > hi - lo + 1:
            raise ValueError(f"quantizer {token!r}: {lv} levels cannot lie in int8 codes {lo}..{hi}")
        QUANTIZER_REGISTRY.register(token, QuantizerSpec(token, fn, int(lv), (int(lo), int(hi)), tuple(options)))
        return fn

    return deco


def _kbit_rule(bits: int) -> Callable[[torch.Tensor], Quantized]:
    rule = kbit(bits)
    rule.__name__ = rule.__qualname__ = f"kbit{bits}"
    return rule


register_quantizer("bnn")(binary)
register_quantizer("tnn", options=("convention",))(ternary)
register_quantizer("4bit")(fourbit)
for _b in (2, 3, 5, 6, 7, 8):  # the 4-bit rule at the other widths mixed precision and sweeps use
    register_quantizer(f"{_b}bit")(_kbit_rule(_b))
del _b

# token -> QuantizerSpec (callable like the rule itself); live, read-only
QUANTIZERS: Mapping[str, QuantizerSpec] = QUANTIZER_REGISTRY.mapping()


def quantizer_spec(token: str) -> QuantizerSpec:
    return QUANTIZER_REGISTRY.get(token)


def get_quantizer(precision: str, ternary_convention: str = "ref") -> Callable[[torch.Tensor], Quantized]:
    """The rule of ``precision`` with its options bound (the layer knows only the weight)."""
    try:
        spec = QUANTIZER_REGISTRY.get(precision)
    except UnknownNameError as e:
        raise ValueError(f"no quantizer for precision {precision!r}: {e}") from None
    if "convention" in spec.options:
        return functools.partial(spec.fn, convention=ternary_convention)
    return spec.fn
