"""The Bit-Flip Attack (Rakin, He & Fan, ICCV 2019) on the stored weight codes.

Progressive bit search: on a fixed attack batch from the training split, each step takes the
gradient of the loss with respect to the deployed weights; within every layer it ranks every
(weight, bit) flip by its first-order loss gain ∂L/∂w · Δw, where Δw is what flipping that
bit of the stored word does to the weight (codes_io.py: sign-magnitude codes, int8 two's
complement for float models); across layers it keeps the candidate whose exact loss, measured
with the flip in place, is highest, and commits it. The metric is the number of flips needed
to bring the accuracy on the test points to the target (11 %, about chance), capped.
"""

from __future__ import annotations

import time

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..data.cifar10 import EvalData
from ..engine.results import Result, SeedResult
from ..engine.seeding import predict
from ..errors import QrobenchError
from ..models.noise import is_stochastic
from ..quant.measure import measure_weights
from .codes_io import INT8_PTQ, StoredLayer, decode, encode, stored_layers
from .record import weight_threat_result

CAP = 200  # flips; a model still above the target after them is reported as "> CAP"
TARGET_ACC = 0.11
ATTACK_BATCH = 128
THREAT_MODEL = "bit-flip"


def _loss(model: nn.Module, x, y) -> float:
    with torch.no_grad():
        return float(F.cross_entropy(model(x), y))


def _best_in_layer(layer: StoredLayer, grad: torch.Tensor) -> tuple[float, int, int, torch.Tensor]:
    """(first-order gain, flat index, bit, new code) of the layer's best single flip."""
    words = encode(layer.words, layer.bits, layer.format).flatten()
    codes = layer.words.flatten()
    scale = layer.scale.expand_as(layer.words).flatten() if layer.scale is not None else None
    g = grad.flatten().double()
    best = (-float("inf"), 0, 0, codes[0])
    for b in range(layer.bits):
        new = decode(words ^ (1 << b), layer.bits, layer.format).flatten()
        delta = (new - codes).double() * (scale.double() if scale is not None else 1.0)
        gain = g * delta
        i = int(torch.argmax(gain))
        if float(gain[i]) > best[0]:
            best = (float(gain[i]), i, b, new[i])
    return best


def _set_code(layer: StoredLayer, index: int, code) -> None:
    flat = layer.words.view(-1)
    flat[index] = code
    layer.write(layer.words)


def bit_flip_attack(model: nn.Module, attack_x: torch.Tensor, attack_y: torch.Tensor, test: EvalData, *,
                    cap: int = CAP, target: float = TARGET_ACC, float_as: str = INT8_PTQ, batch_size: int = 500,
                    card=None, command: str | None = None, seed: int = 0) -> Result:
    """The BFA record of ``model``: flips needed to bring ``test`` accuracy to ``target``."""
    if is_stochastic(model):
        raise QrobenchError("the bit-flip attack needs a deterministic model (its loss must be a function of the "
                            "weights); this one is random at test time")
    if float_as != INT8_PTQ:
        raise QrobenchError("the bit-flip attack searches integer codes; a float model is attacked in its int8 "
                            "post-training codes (float_as='int8-ptq')")
    if cap < 1 or not 0 < target < 1:
        raise QrobenchError(f"cap must be ≥ 1 and target a fraction in (0, 1), got {cap}, {target}")
    model = model.cpu().eval()
    stats = measure_weights(model)
    layers, stored = stored_layers(model, float_as)
    originals = [layer.words.clone() for layer in layers]
    dev = torch.device("cpu")
    t0 = time.perf_counter()
    clean = predict(model, test.x, batch_size, dev, (seed, 0, 0)).cpu() == test.y
    clean_time = time.perf_counter() - t0
    acc = float(clean.float().mean())
    trajectory, flips = [], 0
    weights = [layer.module.weight for layer in layers]
    try:
        while acc > target and flips < cap:
            for w in weights:
                w.requires_grad_(True)
                w.grad = None
            F.cross_entropy(model(attack_x), attack_y).backward()
            candidates = []
            for k, layer in enumerate(layers):
                _, i, b, new = _best_in_layer(layer, layer.module.weight.grad)
                old = layer.words.view(-1)[i].clone()
                _set_code(layer, i, new)
                candidates.append((_loss(model, attack_x, attack_y), k, i, b, new, old))
                _set_code(layer, i, old)
            for w in weights:
                w.requires_grad_(False)
                w.grad = None
            loss, k, i, b, new, old = max(candidates, key=lambda c: c[0])
            _set_code(layers[k], i, new)
            flips += 1
            acc = float((predict(model, test.x, batch_size, dev, (seed, 0, 0)).cpu() == test.y).float().mean())
            trajectory.append({"flip": flips, "layer": layers[k].name, "index": i, "bit": b, "code": [int(old), int(new)],
                               "attack_loss": round(loss, 4), "test_acc": acc})
        final = clean & (predict(model, test.x, batch_size, dev, (seed, 0, 0)).cpu() == test.y)
        search_time = time.perf_counter() - t0 - clean_time
    finally:
        for layer, words in zip(layers, originals, strict=True):
            layer.words = words
            layer.put_back()
            layer.module.weight.requires_grad_(False)
    reached = acc <= target
    settings = {"bfa": {"cap": cap, "target_acc": target, "attack_batch": len(attack_y),
                        "attack_data": "training split, first images after a seeded shuffle", "stored": stored,
                        "search": "progressive bit search: in-layer top-1 by ∂L/∂w·Δw, cross-layer by exact loss"}}
    return weight_threat_result(model, card, stats, stored, test, threat_model=THREAT_MODEL, attacks=settings,
                                per_seed=[SeedResult.from_masks(seed, clean, {"bfa": final}, clean_time_s=clean_time,
                                                                    wall_time_s={"bfa": search_time})], batch_size=batch_size,
                                started=t0, command=command, flags=[] if reached else ["bfa-capped"],
                                weight_threat={"flips": flips if reached else None, "capped": not reached,
                                               "flips_made": flips, "final_test_acc": acc, "trajectory": trajectory})


def attack_batch(train: EvalData, n: int = ATTACK_BATCH, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """A fixed batch of training images for the search (never test points)."""
    idx = torch.randperm(len(train), generator=torch.Generator().manual_seed(seed))[:n]
    return train.x[idx], train.y[idx]
