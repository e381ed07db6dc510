"""Random bit errors in the stored weights (Stutz et al., MLSys 2021): low-voltage memories
flip each stored bit independently with a small probability p.

For each rate p and each of ``patterns`` seeded error patterns, every bit of every stored
word (codes_io.py) flips with probability p; the model is scored on the first n test points
and restored. A result record holds one "seed" per pattern and one column per rate, so
mean ± std over patterns, the worst pattern and per-point outcomes come from the same
machinery as the attacks'. A point counts when it is classified correctly both without and
with the errors (robust ≤ clean, as everywhere in qrobench).
"""

from __future__ import annotations

import time

import torch
import torch.nn as nn

from ..data.cifar10 import EvalData
from ..engine.results import Result, SeedResult
from ..engine.seeding import predict
from ..errors import QrobenchError
from ..models.noise import is_stochastic
from ..quant.measure import measure_weights
from ..toolkits.writers import writable
from .codes_io import INT8_PTQ, StoredLayer, decode, encode, stored_layers
from .record import weight_threat_result

RATES = (1e-4, 1e-3, 5e-3, 1e-2)  # 0.01, 0.1, 0.5 and 1 % of the stored bits
PATTERNS = 25
THREAT_MODEL = "bit-errors"
_STREAM = 0xB17E  # the error patterns' own seed stream, apart from the attacks'


def _pattern_seed(seed: int, rate_index: int, pattern: int) -> int:
    return (((seed * 1_000_003 + _STREAM) * 1_000_003 + rate_index) * 1_000_003 + pattern) % (2 ** 63)


def rate_name(p: float) -> str:
    return f"ber-{100 * p:g}%"


def flip(words: torch.Tensor, bits: int, p: float, gen: torch.Generator) -> torch.Tensor:
    """Each of the ``bits`` low bits of every word flips with probability ``p``."""
    mask = torch.zeros_like(words)
    for b in range(bits):
        hit = torch.rand(words.shape, generator=gen) < p
        mask |= hit.to(torch.int64) << b
    return words ^ mask


def with_errors(layers: list[StoredLayer], p: float, gen: torch.Generator) -> int:
    """Write every layer's words with errors at rate ``p``; returns the number of flipped bits."""
    flipped = 0
    for layer in layers:
        words = encode(layer.words, layer.bits, layer.format)
        bad = flip(words, layer.bits, p, gen)
        flipped += int(sum(((bad ^ words) >> b & 1).sum() for b in range(layer.bits)))
        layer.write(decode(bad, layer.bits, layer.format))
    return flipped


def restore(layers: list[StoredLayer]) -> None:
    for layer in layers:
        layer.write(layer.words)


@torch.no_grad()
def evaluate_bit_errors(model: nn.Module, data: EvalData, *, rates=RATES, patterns: int = PATTERNS,
                        seed: int = 0, float_as: str = INT8_PTQ, batch_size: int = 500, card=None,
                        command: str | None = None) -> Result:
    """The bit-error record of ``model`` on ``data`` (see the module docstring)."""
    if patterns < 1:
        raise QrobenchError(f"patterns must be at least 1, got {patterns}")
    if not rates or any(not 0 < p < 1 for p in rates):
        raise QrobenchError(f"bit error rates are fractions in (0, 1), got {list(rates)}")
    model = writable(model).cpu().eval()  # a Brevitas model: its materialised copy
    stats = measure_weights(model)  # the model's own statistics, before any post-training int8
    layers, stored = stored_layers(model, float_as, toolkits=True)
    dev = torch.device("cpu")
    t0 = time.perf_counter()
    clean = predict(model, data.x, batch_size, dev, (seed, 0, 0)).cpu() == data.y
    runs, flips = [], {rate_name(p): [] for p in rates}
    try:
        for k in range(patterns):
            masks = {}
            for j, p in enumerate(rates):
                gen = torch.Generator().manual_seed(_pattern_seed(seed, j, k))
                flips[rate_name(p)].append(with_errors(layers, p, gen))
                masks[rate_name(p)] = clean & (predict(model, data.x, batch_size, dev, (seed, 0, 0)).cpu() == data.y)
                restore(layers)
            runs.append(SeedResult.from_masks(seed + k, clean, masks))
    finally:
        restore(layers)
    total_bits = sum(layer.words.numel() * layer.bits for layer in layers)
    settings = {rate_name(p): {"rate": p, "patterns": patterns, "stored": stored, "bits_stored": total_bits,
                               "mean_flipped_bits": sum(flips[rate_name(p)]) / patterns,
                               "pattern_seeds": f"generator seeded by (seed, {_STREAM:#x}, rate index, pattern)"}
                for p in rates}
    return weight_threat_result(model, card, stats, stored, data, threat_model=THREAT_MODEL, attacks=settings,
                                per_seed=runs, batch_size=batch_size, started=t0, command=command,
                                stochastic=is_stochastic(model), flags=[])
