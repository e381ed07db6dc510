"""Attack base class and registry: one attack per file, registered by name with one decorator.

``@register_attack(name, **defaults)`` files an ``Attack`` subclass under ``name`` with the
settings that define it (``pgd20``, ``ifgsm20`` and ``eot-pgd20`` are one class, ``PGD``,
with three sets of defaults); ``create_attack(name, model, **kwargs)`` builds it, keyword
arguments overriding the defaults. The module also holds the two losses the gradient
attacks share: ``"ce"`` (cross-entropy) and ``"margin"`` (C&W margin, max other logit −
true logit). The registered battery is listed in docs/protocol.md §6.2.

Example::

    atk = create_attack("pgd20", model, eps=8/255, device="cuda")
    x_adv = atk(x, y, generator=torch.Generator().manual_seed(0))
    atk.settings()  # {'eps': 0.0313..., 'norm': 'Linf', 'steps': 20, ...}
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..protocol import LEADERBOARD_EPS
from ..registry import Registry


class UnknownNormError(ValueError):
    """An attack asked to search an ε-ball it does not implement."""

    def __init__(self, attack: str, norm: str, norms):
        super().__init__(f"attack {attack!r} searches the {'/'.join(norms)} ball only, not {norm}; "
                         "choose attacks for this threat model ('qrobench attacks' lists each one's norms)")


class Attack:
    """An attack with its settings fixed at construction; ``perturb(x, y)`` returns x_adv.

    Arguments: ``model``, ``eps`` (the radius in [0, 1] pixel units; 8/255, the leaderboard's
    L∞ budget, by default), ``norm`` (the ball: one of the class's ``norms``, set by the
    threat model of the run), ``device``, ``seed`` (used only where an integer seed is needed and no
    generator is given) and the subclass's own settings; unknown keywords raise TypeError.
    x_adv must lie in the ε-ball around x and in [0, 1] (checked by the engine, §6.1).

    ``generator``: a ``torch.Generator``, the attack's only source of randomness (PGD's
    random start, Square's proposals, AutoAttack's seeds, a randomised surrogate's noise).
    The engine seeds one per batch from (run seed, attack index, batch index)
    (docs/protocol.md §6.3), so batches differ and a run repeats bit for bit; deterministic
    attacks ignore it, and ``None`` falls back to torch's global RNG or to ``seed``.

    ``settings()``: a dict of everything that defines the attack (``eps`` and ``norm`` here,
    each subclass adds its own), written into every result (§9) and compared when runs are
    merged. ``white_box`` is False for attacks that use no gradient of the target;
    ``diagnostics`` holds per-call measurements such as ``zero_grad_frac``.
    """

    name = "attack"
    white_box = True
    norms: tuple[str, ...] = ("Linf",)  # the ε-balls this attack searches (protocol.ThreatModel.norm)

    def __init__(self, model: nn.Module, eps: float = LEADERBOARD_EPS, device: str | torch.device = "cpu",
                 seed: int = 0, norm: str = "Linf", **kwargs):
        if norm not in self.norms:
            raise UnknownNormError(self.name, norm, self.norms)
        self.model = model
        self.eps = float(eps)
        self.norm = norm
        self.device = torch.device(device)
        self.seed = int(seed)
        self.diagnostics: dict[str, float] = {}
        if kwargs:
            raise TypeError(f"{type(self).__name__} got unknown settings {sorted(kwargs)}")

    def settings(self) -> dict:
        """Everything that defines the attack, recorded with every result."""
        return {"eps": self.eps, "norm": self.norm}

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

# name -> (Attack subclass, the settings that define this name); one class serves several names
ATTACKS: Registry[tuple[type[Attack], dict]] = Registry("attack")


def register_attack(name: str, **defaults):
    """Register an Attack subclass under ``name``, optionally with fixed settings."""

    def deco(cls):
        ATTACKS.register(name, (cls, defaults))
        return cls

    return deco


def list_attacks() -> list[str]:
    return ATTACKS.names()


def is_white_box(name: str) -> bool:
    """Whether the registered attack ``name`` uses the target's gradients (unknown names: True)."""
    return ATTACKS.get(name)[0].white_box if name in ATTACKS else True


def attack_norms(name: str) -> tuple[str, ...]:
    """The ε-balls the registered attack ``name`` searches (``Linf``, ``L2``)."""
    return ATTACKS.get(name)[0].norms


def check_attack_names(names) -> None:
    ATTACKS.check(names)


def create_attack(name: str, model: nn.Module, **kwargs) -> Attack:
    cls, defaults = ATTACKS.get(name)
    atk = cls(model, **{**defaults, **kwargs})
    atk.name = name
    return atk
