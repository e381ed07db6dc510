"""Feynman-Kac noise for EnResNet: ``x + c * std(x) * N(0, I)``, on in eval mode too.

All noise modules of a model draw from one generator; seeding it per batch makes a
stochastic evaluation repeatable.
"""

from __future__ import annotations

from contextlib import contextmanager

import torch
import torch.nn as nn


class FeynmanKacNoise(nn.Module):
    def __init__(self, coef: float):
        super().__init__()
        self.coef = float(coef)
        self.generator: torch.Generator | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.coef == 0.0:
            return x
        g = self.generator
        if g is not None and g.device != x.device:
            g = None
        noise = torch.randn(x.shape, generator=g, device=x.device, dtype=x.dtype)
        return x + self.coef * x.std() * noise

    def extra_repr(self) -> str:
        return f"coef={self.coef}"


def is_stochastic(model: nn.Module) -> bool:
    return any(isinstance(m, FeynmanKacNoise) and m.coef > 0 for m in model.modules())


def seed_noise(model: nn.Module, seed: int | None, device: torch.device | str = "cpu") -> None:
    """Give every noise module one shared generator seeded with ``seed`` (None: global RNG)."""
    g = None
    if seed is not None:
        g = torch.Generator(device=device)
        g.manual_seed(int(seed))
    for m in model.modules():
        if isinstance(m, FeynmanKacNoise):
            m.generator = g


@contextmanager
def noise_seed(model: nn.Module, seed: int | None, device: torch.device | str = "cpu"):
    seed_noise(model, seed, device)
    try:
        yield
    finally:
        seed_noise(model, None)
