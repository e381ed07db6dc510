"""Weight quantizers, the quantized conv layer, and the size/sparsity metrics."""

from .layers import QuantConv2d, quantized_layers, set_quant_mode
from .metrics import QuantStats, quant_stats
from .quantizers import (
    PRECISIONS,
    QUANTIZERS,
    Quantized,
    binary,
    bits_of,
    fourbit,
    get_quantizer,
    levels_of,
    ternary,
)

__all__ = [
    "PRECISIONS", "QUANTIZERS", "Quantized", "QuantConv2d", "QuantStats", "binary", "bits_of",
    "fourbit", "get_quantizer", "levels_of", "quant_stats", "quantized_layers", "set_quant_mode",
    "ternary",
]
