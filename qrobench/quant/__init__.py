"""Weight quantizers, the quantized conv layer, and the size/sparsity metrics."""

from .layers import QuantConv2d, quantized_layers, set_quant_mode
from .metrics import QuantStats, quant_stats
from .quantizers import (
    QUANTIZER_REGISTRY,
    QUANTIZERS,
    Quantized,
    QuantizerSpec,
    binary,
    fourbit,
    get_quantizer,
    quantizer_spec,
    register_quantizer,
    ternary,
)

__all__ = [
    "QUANTIZERS", "QUANTIZER_REGISTRY", "Quantized", "QuantizerSpec", "QuantConv2d", "QuantStats", "binary",
    "fourbit", "get_quantizer", "quant_stats", "quantized_layers", "quantizer_spec", "register_quantizer",
    "set_quant_mode", "ternary",
]
