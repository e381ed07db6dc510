"""Attack base class and registry: one attack per file, registered by name with one decorator."""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..errors import UnknownNameError

DEFAULT_EPS = 8 / 255


class Attack:
    """An L∞ attack with its settings fixed at construction; ``perturb`` returns x_adv.

    Randomness (random starts, Square's proposals) comes from ``generator`` so that the
    engine can make every batch repeatable.
    """

    name = "attack"
    white_box = True

    def __init__(self, model: nn.Module, eps: float = DEFAULT_EPS, device: str | torch.device = "cpu",
                 seed: int = 0, **kwargs):
        self.model = model
        self.eps = float(eps)
        self.device = torch.device(device)
        self.seed = int(seed)
        self.diagnostics: dict[str, float] = {}
        if kwargs:
            raise TypeError(f"{type(self).__name__} got unknown settings {sorted(kwargs)}")

    def settings(self) -> dict:
        """Everything that defines the attack, recorded with every result."""
        return {"eps": self.eps, "norm": "Linf"}

    def perturb(self, x: torch.Tensor, y: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        raise NotImplementedError

    def __call__(self, x, y, generator=None):
        return self.perturb(x, y, generator)


def margin_loss(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """C&W margin, max other logit − true logit (positive = misclassified)."""
    true = logits.gather(1, y[:, None]).squeeze(1)
    other = logits.clone()
    other.scatter_(1, y[:, None], float("-inf"))
    return other.amax(1) - true


def ce_loss(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return F.cross_entropy(logits, y, reduction="none")


LOSSES: dict[str, Callable] = {"ce": ce_loss, "margin": margin_loss}

_ATTACKS: dict[str, tuple[type[Attack], dict]] = {}


def register_attack(name: str, **defaults):
    """Register an Attack subclass under ``name``, optionally with fixed settings."""

    def deco(cls):
        if name in _ATTACKS:
            raise ValueError(f"attack {name!r} is already registered")
        _ATTACKS[name] = (cls, defaults)
        return cls

    return deco


def list_attacks() -> list[str]:
    return sorted(_ATTACKS)


def check_attack_names(names) -> None:
    for n in names:
        if n not in _ATTACKS:
            raise UnknownNameError("attack", n, _ATTACKS)


def create_attack(name: str, model: nn.Module, **kwargs) -> Attack:
    check_attack_names([name])
    cls, defaults = _ATTACKS[name]
    atk = cls(model, **{**defaults, **kwargs})
    atk.name = name
    return atk
