"""Sparsity, channel sparsity and deployed size (docs/protocol.md §5) of a qrobench model.

A thin view of :func:`qrobench.quant.measure.measure_weights`, which holds the one
implementation (it also measures arbitrary submitted models).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch.nn as nn

from .measure import measure_weights


@dataclass
class QuantStats:
    sparsity: float  # zero weights / all weights over the quantization-eligible convs
    channel_sparsity: float  # all-zero input-channel slices / all slices
    zero_channels: int
    total_channels: int
    n_params: int
    size_bytes: int  # deployed size, packed at the true bit-width
    fp32_bytes: int
    compression: float

    def as_dict(self) -> dict:
        return asdict(self)


def quant_stats(model: nn.Module) -> QuantStats:
    s = measure_weights(model)
    return QuantStats(s.sparsity, s.channel_sparsity, s.zero_channels, s.total_channels,
                      s.n_params, s.size_bytes, s.fp32_bytes, s.compression)
