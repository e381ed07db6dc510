"""Random bit errors in the stored weights (Stutz et al., MLSys 2021): low-voltage memories
flip each stored bit independently with a small probability p.

For each rate p and each of ``patterns`` seeded error patterns, every bit of every stored
word (codes_io.py) flips with probability p; the model is scored on the first n test points
and restored. A result record holds one "seed" per pattern and one column per rate, so
mean ± std over patterns, the worst pattern and per-point outcomes come from the same
machinery as the attacks'. A point counts when it is classified correctly both without and
with the errors (robust ≤ clean, as everywhere in qrobench).

Attacked (``evaluate_bit_errors_attacked``): an input attack (pgd20 at the leaderboard's ε) on
the model with each error pattern written, the same patterns as the unattacked record's at that
rate, so the two records pair pattern by pattern. A point counts when it is correct without the
errors and survives the attack with them.
"""

from __future__ import annotations

import dataclasses
import time

import torch
import torch.nn as nn

from ..data.cifar10 import EvalData
from ..engine.config import make_config
from ..engine.evaluate import evaluate
from ..engine.results import Result, SeedResult
from ..engine.seeding import predict
from ..errors import QrobenchError
from ..models.noise import is_stochastic
from ..quant.measure import measure_weights
from ..toolkits import DeployedModel, model_format
from ..toolkits.writers import writable
from .codes_io import INT8_PTQ, StoredLayer, decode, encode, put_back, stored_layers
from .record import weight_threat_result

RATES = (1e-4, 1e-3, 5e-3, 1e-2)  # 0.01, 0.1, 0.5 and 1 % of the stored bits
PATTERNS = 25
ATTACKED_RATE = 1e-3  # robust accuracy under bit errors is measured at p = 0.1 % (issue #26)
THREAT_MODEL = "bit-errors"
_STREAM = 0xB17E  # the error patterns' own seed stream, apart from the attacks'


def _pattern_seed(seed: int, rate_index: int, pattern: int) -> int:
    return (((seed * 1_000_003 + _STREAM) * 1_000_003 + rate_index) * 1_000_003 + pattern) % (2 ** 63)


def rate_name(p: float) -> str:
    return f"ber-{100 * p:g}%"


def attacked_name(attack: str, p: float) -> str:
    return f"{attack}@{rate_name(p)}"


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
    t0 = time.perf_counter()
    model, stats, layers, stored, clean, clean_time = _stored(writable(model), data, float_as, batch_size, seed)
    runs, flips = [], {rate_name(p): [] for p in rates}
    try:
        for k in range(patterns):
            masks, seconds = {}, {}
            for p in rates:
                t = time.perf_counter()
                gen = torch.Generator().manual_seed(_pattern_seed(seed, _rate_index(p), k))
                flips[rate_name(p)].append(with_errors(layers, p, gen))
                masks[rate_name(p)] = clean & (predict(model, data.x, batch_size, _CPU, (seed, 0, 0)).cpu() == data.y)
                restore(layers)
                seconds[rate_name(p)] = time.perf_counter() - t
            runs.append(SeedResult.from_masks(seed + k, clean, masks, wall_time_s=seconds, clean_time_s=clean_time))
    finally:
        put_back(layers)
    total_bits = sum(layer.words.numel() * layer.bits for layer in layers)
    settings = {rate_name(p): {"rate": p, "patterns": patterns, "stored": stored, "bits_stored": total_bits,
                               "mean_flipped_bits": sum(flips[rate_name(p)]) / patterns,
                               "pattern_seeds": f"generator seeded by (seed, {_STREAM:#x}, rate index, pattern); "
                                                "the rate index is the rate's position in RATES"}
                for p in rates}
    return weight_threat_result(model, card, stats, stored, data, threat_model=THREAT_MODEL, attacks=settings,
                                per_seed=runs, batch_size=batch_size, started=t0, command=command,
                                stochastic=is_stochastic(model), flags=[])


_CPU = torch.device("cpu")


def _stored(model: nn.Module, data: EvalData, float_as: str, batch_size: int, seed: int):
    """(the model on the CPU, its own weight statistics, its stored layers, what they are, the
    points it classifies correctly without errors, the seconds that clean pass took): what both
    bit-error evaluations start from."""
    model = model.cpu().eval()
    stats = measure_weights(model)  # the model's own statistics, before any post-training int8
    layers, stored = stored_layers(model, float_as, toolkits=True)
    t = time.perf_counter()
    clean = predict(model, data.x, batch_size, _CPU, (seed, 0, 0)).cpu() == data.y
    return model, stats, layers, stored, clean, time.perf_counter() - t


def _rate_index(p: float) -> int:
    """The pattern stream of rate ``p``: the unattacked record's index where it has this rate, so
    both records draw the same error patterns; other rates get streams past those."""
    for j, q in enumerate(RATES):
        if abs(q - p) <= 1e-12:
            return j
    return len(RATES) + int(round(p * 1e9))


def evaluate_bit_errors_attacked(model: nn.Module, data: EvalData, *, attack: str = "pgd20",
                                 rate: float = ATTACKED_RATE, patterns: int = PATTERNS, seed: int = 0,
                                 eps: float | None = None, float_as: str = INT8_PTQ, batch_size: int = 250,
                                 card=None, command: str | None = None) -> Result:
    """Robust accuracy under random bit errors (see the module docstring): per error pattern, one
    engine evaluation of ``attack`` (L∞, ε default 8/255) on the model holding the errors."""
    if patterns < 1:
        raise QrobenchError(f"patterns must be at least 1, got {patterns}")
    if not 0 < rate < 1:
        raise QrobenchError(f"a bit error rate is a fraction in (0, 1), got {rate}")
    model = writable(model)  # a Brevitas model: its materialised copy, attacked directly
    fmt = "onnx" if isinstance(model, DeployedModel) else model_format(model)
    if fmt in ("onnx", "torch-ao", "pt2e"):
        raise QrobenchError(f"{attack} under bit errors needs a model whose forward has an input gradient; this "
                            f"{fmt} model runs on integer kernels and is attacked through a twin, which would not "
                            f"hold the errors. Measure its bit errors without --attacks")
    t0 = time.perf_counter()
    model, stats, layers, stored, clean, clean_time = _stored(model, data, float_as, batch_size, seed)
    name = attacked_name(attack, rate)
    cfg = make_config(attacks=[attack], n=len(data), eps=eps, seed=seed, repeats=1, batch_size=batch_size,
                      device="cpu", progress=False)
    runs, flips, used = [], [], None
    j = _rate_index(rate)
    try:
        for k in range(patterns):
            gen = torch.Generator().manual_seed(_pattern_seed(seed, j, k))
            flips.append(with_errors(layers, rate, gen))
            used = evaluate(model, dataclasses.replace(cfg, seed=seed + k), data=data)
            survived = torch.from_numpy(used.masks(attack)[0])
            runs.append(SeedResult.from_masks(seed + k, clean, {name: clean & survived}, clean_time_s=clean_time,
                                              wall_time_s={name: used.wall_time_s[attack]}))
            restore(layers)
    finally:
        put_back(layers)
    total_bits = sum(layer.words.numel() * layer.bits for layer in layers)
    settings = {name: {"rate": rate, "patterns": patterns, "stored": stored, "bits_stored": total_bits,
                       "mean_flipped_bits": sum(flips) / patterns, "attack": attack,
                       "attack_settings": used.attacks[attack],
                       "attack_seeds": "the run seed + pattern index, one engine evaluation per pattern",
                       "pattern_seeds": f"generator seeded by (seed, {_STREAM:#x}, rate index {j}, pattern): "
                                        "the unattacked record's patterns at this rate"}}
    return weight_threat_result(model, card, stats, stored, data, threat_model=THREAT_MODEL, attacks=settings,
                                per_seed=runs, batch_size=batch_size, started=t0, command=command,
                                stochastic=is_stochastic(model), flags=[], eps=used.eps, norm=used.norm)
