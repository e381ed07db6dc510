"""The quantizable conv layer and its modes.

``float``    plain float weights (full-precision models, or before quantization);
``relax``    BinaryRelax phase I: forward at u = (λ·Q(W) + W) / (1 + λ);
``hard``     BinaryRelax phase II: forward at Q(W);
``deployed`` the weight tensor already holds Q(W) = codes·scale, computed once.

In ``relax`` and ``hard`` the gradient with respect to u is applied to the float master W
(straight-through), which is what BinaryRelax/BinaryConnect prescribe.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..protocol import precision
from .quantizers import Quantized, get_quantizer

MODES = ("float", "relax", "hard", "deployed")


class QuantConv2d(nn.Conv2d):
    def __init__(self, *args, precision: str = "fp", ternary_convention: str = "ref", **kwargs):
        super().__init__(*args, **kwargs)
        self.precision = precision
        self.ternary_convention = ternary_convention
        self.mode = "float"
        self.relax_lambda = 1.0
        self.register_buffer("weight_scale", torch.zeros(()), persistent=False)

    @property
    def is_quantized(self) -> bool:
        return self.precision != "fp"

    def quantize(self) -> Quantized:
        return get_quantizer(self.precision, self.ternary_convention)(self.weight)

    def effective_weight(self) -> torch.Tensor:
        if self.mode in ("float", "deployed") or not self.is_quantized:
            return self.weight
        q = self.quantize().dequantize().to(self.weight.dtype)
        w = self.weight
        u = q if self.mode == "hard" else (self.relax_lambda * q + w) / (1.0 + self.relax_lambda)
        # straight-through: value exactly u (no rounding from w + (u - w)), gradient to w
        return u.detach() + (w - w.detach())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, self.effective_weight(), self.bias, self.stride, self.padding,
                        self.dilation, self.groups)

    @torch.no_grad()
    def deploy(self) -> None:
        """Replace the float master weights by Q(W), once."""
        if not self.is_quantized or self.mode == "deployed":
            self.mode = "deployed"
            return
        q = self.quantize()
        self.weight.copy_(q.dequantize().to(self.weight.dtype))
        self.weight_scale = q.scale.to(self.weight.device)
        self.mode = "deployed"

    @torch.no_grad()
    def load_deployed(self, codes: torch.Tensor, scale: torch.Tensor) -> None:
        self.weight.copy_(codes.to(self.weight.dtype) * scale.to(self.weight.dtype))
        self.weight_scale = scale.detach().clone().float().reshape(())
        self.mode = "deployed"

    @torch.no_grad()
    def deployed_codes(self) -> Quantized:
        """Integer codes and scale of a deployed layer (recovered exactly from codes·scale)."""
        if self.mode != "deployed":
            raise RuntimeError("call deploy() before exporting codes")
        s = self.weight_scale
        if s == 0:
            return Quantized(torch.zeros_like(self.weight, dtype=torch.int8), s.clone())
        return Quantized(torch.round(self.weight / s).to(torch.int8), s.clone().float())

    def max_levels(self) -> int | None:
        return precision(self.precision).levels if self.is_quantized else None

    def extra_repr(self) -> str:
        return super().extra_repr() + f", precision={self.precision}, mode={self.mode}"


def quantized_layers(model: nn.Module) -> Iterator[tuple[str, QuantConv2d]]:
    """All quantization-eligible convs (stem and 3x3 block convs), fp models included."""
    for name, m in model.named_modules():
        if isinstance(m, QuantConv2d):
            yield name, m


def set_quant_mode(model: nn.Module, mode: str, relax_lambda: float | None = None) -> None:
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}")
    for _, m in quantized_layers(model):
        if mode == "deployed":
            m.deploy()
            continue
        m.mode = mode
        if relax_lambda is not None:
            m.relax_lambda = float(relax_lambda)
