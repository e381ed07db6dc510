"""Seeds and seeded prediction: the one scheme every batch of every evaluation draws from.

A batch's randomness (the model's test-time noise, an attack's random start or proposals)
comes from a seed derived from a tuple of integers — (run seed, attack index, batch index,
purpose) — through NumPy's ``SeedSequence``, which hashes the tuple, so nearby tuples give
unrelated streams and a run repeats exactly whatever else the process did before.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn as nn

from ..models.noise import noise_seed

# An evaluation seeds batch b of attack k (k = 1, 2, … in battery order; 0 = the clean pass)
# from (seed, k, b, purpose). Keep these values: stored results depend on them.
CLEAN = 0
ATTACK_GENERATOR, ATTACK_NOISE, SCORE_NOISE = 1, 2, 3
# Training draws from (seed, TRAINING, epoch, purpose) and validates with (seed, VALIDATION, b, …):
# indices no battery reaches, so training and evaluation streams never coincide.
TRAINING, VALIDATION = 2**31 - 2, 2**31 - 1
EPOCH_DATA, EPOCH_NOISE = 1, 2


def batch_seed(*parts: int) -> int:
    """A 32-bit seed from a tuple of non-negative integers."""
    return int(np.random.SeedSequence([int(p) for p in parts]).generate_state(1)[0])


def generator(device: torch.device | str, *parts: int) -> torch.Generator:
    """A torch generator on ``device`` seeded with ``batch_seed(*parts)``."""
    g = torch.Generator(device=device)
    g.manual_seed(batch_seed(*parts))
    return g


@torch.inference_mode()
def predict(model: nn.Module, x: torch.Tensor, batch_size: int, device, seed_parts=(),
            memory_format: torch.memory_format = torch.contiguous_format) -> torch.Tensor:
    """Predicted labels of ``x`` (on the CPU), batch b drawing the model's noise from
    ``batch_seed(*seed_parts, b)``: the clean pass of evaluations, submissions and training."""
    preds = []
    for b, i in enumerate(range(0, len(x), batch_size)):
        with noise_seed(model, batch_seed(*seed_parts, b), device):
            preds.append(model(x[i:i + batch_size].to(device, memory_format=memory_format)).argmax(1).cpu())
    return torch.cat(preds) if preds else torch.empty(0, dtype=torch.long)
