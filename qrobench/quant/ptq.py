"""Post-training quantization of a float model at a bit budget: the points of a sweep.

``uniform`` puts every quantizable conv at the same precision (1 bit: binary, 2–8 bits: the
4-bit rule generalised, quantizers.kbit); ``lgmp`` lets qrobench-LGMP (lipschitz.py) choose
per-layer bit-widths whose parameter-weighted mean stays within the budget. Both start from
the same float weights, change nothing else (no fine-tuning, no BatchNorm re-estimation)
and deploy Q(W), so the two are compared like for like at equal average bits.
"""

from __future__ import annotations

import copy

import torch.nn as nn

from ..errors import QrobenchError
from ..protocol import precision_for_bits
from .layers import quantized_layers, set_quant_mode
from .lipschitz import SWEEP_CANDIDATE_BITS, plan_mixed_precision

METHODS = ("uniform", "lgmp")
METHOD_TEXT = {
    "uniform": "every quantizable conv at the same bit-width (1: binary, 2-8: sign-magnitude, quantizers.kbit)",
    "lgmp": "qrobench-LGMP: per-layer bit-widths from the Lipschitz bound, parameter-weighted mean within "
            "the budget (qrobench's own method, inspired by Song et al. 2021)",
}
MIN_BITS, MAX_BITS = 1, 8


def check_sweep_args(methods: list[str], bits: list[int]) -> None:
    bad = [m for m in methods if m not in METHODS]
    if bad:
        raise QrobenchError(f"--method {','.join(bad)} is unknown; choose from {', '.join(METHODS)}")
    off = [b for b in bits if not MIN_BITS <= b <= MAX_BITS]
    if off:
        raise QrobenchError(f"--bits {','.join(map(str, off))} out of range: post-training quantization "
                            f"supports {MIN_BITS}..{MAX_BITS} bits per weight")


def quantize_post_training(model: nn.Module, method: str, bits: int) -> tuple[nn.Module, dict]:
    """A deployed copy of the float ``model`` quantized by ``method`` at ``bits``, and its spec
    (method, budget, achieved mean bits, per-layer bits) for the result file."""
    check_sweep_args([method], [bits])
    layers = list(quantized_layers(model))
    if not layers:
        raise QrobenchError("post-training quantization needs a qrobench architecture (QuantConv2d layers)")
    if any(m.is_quantized for _, m in layers):
        raise QrobenchError("the sweep starts from a float model; this one is already quantized")
    q = copy.deepcopy(model).cpu()
    plan = None
    if method == "uniform":
        layer_bits = {name: bits for name, _ in layers}
    else:
        plan = plan_mixed_precision(q, float(bits), SWEEP_CANDIDATE_BITS)
        layer_bits = plan["layer_bits"]
    for name, m in quantized_layers(q):
        m.precision = precision_for_bits(layer_bits[name])
        m.mode = "float"  # the zoo loads float models deployed; quantize their weights afresh
    set_quant_mode(q, "deployed")
    sizes = {name: m.weight.numel() for name, m in layers}
    spec = {"method": method, "description": METHOD_TEXT[method], "bits_budget": bits,
            "avg_bits": sum(layer_bits[k] * sizes[k] for k in sizes) / sum(sizes.values()),
            "layer_bits": layer_bits, "fine_tuned": False}
    if plan is not None:
        spec["bound_sum"] = plan["bound_sum"]
    return q.eval(), spec
