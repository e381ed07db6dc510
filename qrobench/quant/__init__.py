"""Weight quantizers, the quantized conv layer, and the size/sparsity metrics."""

from .layers import QuantConv2d, quantized_layers, set_quant_mode
from .metrics import QuantStats, quant_stats
from .quantizers import (
    QUANTIZERS,
    Quantized,
    binary,
    fourbit,
    get_quantizer,
    ternary,
)

__all__ = [
    "QUANTIZERS", "Quantized", "QuantConv2d", "QuantStats", "binary",
    "fourbit", "get_quantizer", "quant_stats", "quantized_layers", "set_quant_mode",
    "ternary",
]
