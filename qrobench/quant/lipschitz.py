"""qrobench-LGMP: Lipschitz-guided layer-wise mixed precision (qrobench's own method).

Inspired by Song, Ranjan & Li (arXiv 2110.12308), whose method is not public; this is our
construction (docs/protocol.md §4.4). Quantizing layer l to b bits perturbs its operator
by E_l(b) = W_l − Q_b(W_l); to first order the logit error is bounded by
‖E_l(b)‖ · Π_{k≠l} L_k, with L_k the operator norm (spectral norm of the convolution,
by power iteration) of layer k. With P = Π_k L_k that is P · ‖E_l(b)‖ / L_l, so we choose
per-layer bit-widths minimising Σ_l ‖E_l(b_l)‖ / L_l under a parameter-weighted
average-bits budget, greedily (cheapest bound increase per bit saved first). The bound
ignores BN, ReLU and the shortcuts: it ranks layers, it does not certify anything.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..protocol import precision_for_bits
from .layers import QuantConv2d, quantized_layers
from .quantizers import binary, kbit

CANDIDATE_BITS = (2, 3, 4, 5, 6, 8)
SWEEP_CANDIDATE_BITS = (1, 2, 3, 4, 5, 6, 8)  # with binary layers, so that a 1-bit budget is possible


def _quantizer(bits: int):
    return binary if bits == 1 else kbit(bits)


def _input_shapes(model: nn.Module, image_shape=(3, 32, 32)) -> dict[str, tuple[int, ...]]:
    shapes, hooks = {}, []
    for name, m in quantized_layers(model):
        hooks.append(m.register_forward_hook(
            lambda mod, inp, out, name=name: shapes.__setitem__(name, tuple(inp[0].shape[1:]))))
    was_training = model.training
    model.eval()
    with torch.no_grad():
        model(torch.zeros(1, *image_shape))
    model.train(was_training)
    for h in hooks:
        h.remove()
    return shapes


@torch.no_grad()
def conv_operator_norm(weight: torch.Tensor, conv: nn.Conv2d, in_shape, iters: int = 30,
                       seed: int = 0) -> float:
    """Spectral norm of x ↦ conv(x; weight) on inputs of shape ``in_shape`` (power iteration)."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(1, *in_shape, generator=g)
    x /= x.norm()
    out_shape = None
    sigma = 0.0
    for _ in range(iters):
        y = F.conv2d(x, weight, None, conv.stride, conv.padding)
        if out_shape is None:
            out_shape = y.shape
        xt = F.conv_transpose2d(y, weight, None, conv.stride, conv.padding,
                                output_padding=_output_padding(in_shape, y.shape, conv))
        sigma = float(y.norm())
        n = xt.norm()
        if n == 0:
            return 0.0
        x = xt / n
    return sigma


def _output_padding(in_shape, out_shape, conv: nn.Conv2d):
    pads = []
    for d in range(2):
        size = (out_shape[2 + d] - 1) * conv.stride[d] - 2 * conv.padding[d] + conv.kernel_size[d]
        pads.append(in_shape[1 + d] - size)
    return tuple(pads)


@dataclass
class LayerPlan:
    name: str
    n_weights: int
    lipschitz: float
    errors: dict[int, float]  # bits -> operator norm of the quantization error
    bits: int = 8


def plan_mixed_precision(model: nn.Module, avg_bits: float, candidates=CANDIDATE_BITS) -> dict:
    """Choose per-layer bits for ``model`` (float weights); returns the plan as a dict."""
    if not min(candidates) <= avg_bits <= max(candidates):
        raise ValueError(f"average bits must lie in [{min(candidates)}, {max(candidates)}], got {avg_bits}")
    shapes = _input_shapes(model)
    plans: list[LayerPlan] = []
    for name, m in quantized_layers(model):
        w = m.weight.detach().float()
        lip = conv_operator_norm(w, m, shapes[name])
        errs = {b: conv_operator_norm(w - _quantizer(b)(w).dequantize(), m, shapes[name]) for b in candidates}
        plans.append(LayerPlan(name, w.numel(), lip, errs, bits=min(candidates)))
    total = sum(p.n_weights for p in plans)
    budget = avg_bits * total

    def cost(p: LayerPlan, b: int) -> float:
        return p.errors[b] / max(p.lipschitz, 1e-12)

    used = sum(p.bits * p.n_weights for p in plans)
    ordered = sorted(candidates)
    while True:  # raise the layer with the best bound decrease per extra bit, within budget
        best, best_gain = None, 0.0
        for p in plans:
            for nb in ordered[ordered.index(p.bits) + 1:]:  # any wider candidate: errors need not
                extra = (nb - p.bits) * p.n_weights    # fall with every bit (1-bit binary beats
                if used + extra > budget + 1e-9:       # 2-bit sign-magnitude on some layers)
                    continue
                gain = (cost(p, p.bits) - cost(p, nb)) / extra
                if gain > best_gain:
                    best, best_gain = (p, nb, extra), gain
        if best is None:
            break
        p, nb, extra = best
        p.bits, used = nb, used + extra
    return {
        "method": "qrobench-LGMP (Lipschitz-guided mixed precision, qrobench's own; inspired by Song et al. 2021)",
        "avg_bits_budget": avg_bits,
        "avg_bits": used / total,
        "bound_sum": sum(cost(p, p.bits) for p in plans),
        "layer_bits": {p.name: p.bits for p in plans},
        "layers": [{"name": p.name, "weights": p.n_weights, "lipschitz": p.lipschitz,
                    "error_at_bits": p.errors[p.bits], "bits": p.bits} for p in plans],
    }


def apply_plan(model: nn.Module, layer_bits: dict[str, int]) -> None:
    """Set each quantized layer's precision from the plan (in place)."""
    for name, m in quantized_layers(model):
        assert isinstance(m, QuantConv2d)
        b = layer_bits[name]
        m.precision = precision_for_bits(b)
