"""Attack base class and registry: one attack per file, registered by name with one decorator.

``@register_attack(name, **defaults)`` files an ``Attack`` subclass under ``name`` with the
settings that define it (``pgd20``, ``ifgsm20`` and ``eot-pgd20`` are one class, ``PGD``,
with three sets of defaults); ``create_attack(name, model, **kwargs)`` builds it, keyword
arguments overriding the defaults. The defaults are the L∞ ones; ``per_norm={"L2": {...}}``
replaces some of them when the attack searches another ball (``norm=...``, set by the run's
threat model), and an ``EpsStep`` default follows the run's ε (α = factor · ε / steps). The module also holds the two losses the gradient
attacks share: ``"ce"`` (cross-entropy) and ``"margin"`` (C&W margin, max other logit −
true logit). The registered battery is listed in docs/protocol.md §6.2.

Example::

    atk = create_attack("pgd20", model, eps=8/255, device="cuda")
    x_adv = atk(x, y, generator=torch.Generator().manual_seed(0))
    atk.settings()  # {'eps': 0.0313..., 'norm': 'Linf', 'steps': 20, ...}
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..models.noise import is_stochastic
from ..protocol import THREAT_MODELS, threat_model_of_norm
from ..registry import Registry


class UnknownNormError(ValueError):
    """An attack asked to search an ε-ball it does not implement."""

    def __init__(self, attack: str, norm: str, norms):
        super().__init__(f"attack {attack!r} searches the {'/'.join(norms)} ball only, not {norm}; "
                         "choose attacks for this threat model ('qrobench attacks' lists each one's norms)")


class Attack:
    """An attack with its settings fixed at construction; ``perturb(x, y)`` returns x_adv.

    Arguments: ``model``, ``eps`` (the radius in [0, 1] pixel units; by default the threat
    model's: 8/255 for L∞, 0.5 for L2), ``norm`` (the ball: one of the class's ``norms``, set by the
    threat model of the run), ``device``, ``seed`` (used only where an integer seed is needed and no
    generator is given), ``randomised`` (whether the model is random at test time; None: it is
    if it carries EnResNet noise) and the subclass's own settings; unknown keywords raise TypeError.
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

    def __init__(self, model: nn.Module, eps: float | None = None, device: str | torch.device = "cpu",
                 seed: int = 0, norm: str = "Linf", randomised: bool | None = None, **kwargs):
        if norm not in self.norms:
            raise UnknownNormError(self.name, norm, self.norms)
        self.model = model
        # random at test time: the engine says (it may know from a probe); else the model's noise modules
        self.randomised = (isinstance(model, nn.Module) and is_stochastic(model)) if randomised is None \
            else bool(randomised)
        self.eps = float(default_eps(norm) if eps is None else eps)
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

def default_eps(norm: str) -> float:
    """The default radius of the ``norm`` ball: its threat model's (8/255 for L∞, 0.5 for L2)."""
    return THREAT_MODELS[threat_model_of_norm(norm)].default_eps


@dataclass(frozen=True)
class EpsStep:
    """A step-size default that follows the run's ε: α = ``factor`` · ε / steps.

    The L2 settings use it (docs/protocol.md §6.2): the L∞ steps are fixed numbers of grey
    levels (2/255), which mean nothing for an L2 radius, so the L2 step is a fraction of ε
    that stays right at any ``--eps`` and any ``steps``."""

    factor: float

    def __call__(self, eps: float, steps: int) -> float:
        return self.factor * eps / steps


# name -> (Attack subclass, the settings that define this name (L∞), the settings that differ per
# other norm); one class serves several names
ATTACKS: Registry[tuple[type[Attack], dict, dict[str, dict]]] = Registry("attack")


def register_attack(name: str, *, per_norm: dict[str, dict] | None = None, **defaults):
    """Register an Attack subclass under ``name``, optionally with fixed settings.

    ``defaults`` are the settings of the L∞ attack; ``per_norm`` maps another norm (``"L2"``) to
    the settings that replace them there, e.g. ``per_norm={"L2": {"step_size": EpsStep(2.5)}}``."""
    per_norm = {k: dict(v) for k, v in (per_norm or {}).items()}

    def deco(cls):
        unknown = sorted(set(per_norm) - set(cls.norms))
        if unknown:
            raise ValueError(f"attack {name!r} has settings for {', '.join(unknown)} but searches "
                             f"{'/'.join(cls.norms)} only")
        ATTACKS.register(name, (cls, defaults, per_norm))
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


def attack_settings(name: str, norm: str = "Linf") -> dict:
    """The registered defaults of ``name`` for the ``norm`` ball (``EpsStep`` values unresolved)."""
    _, defaults, per_norm = ATTACKS.get(name)
    return {**defaults, **per_norm.get(norm, {})}


def create_attack(name: str, model: nn.Module, **kwargs) -> Attack:
    """Attack ``name`` on ``model``: its registered settings for ``norm`` (L∞ unless given),
    overridden by ``kwargs``; an ``EpsStep`` default becomes a number for this ε and steps."""
    cls = ATTACKS.get(name)[0]
    norm = kwargs.get("norm", "Linf")
    settings = {**attack_settings(name, norm), **kwargs}
    for key, value in settings.items():
        if isinstance(value, EpsStep):
            eps = settings.get("eps")
            settings[key] = value(default_eps(norm) if eps is None else float(eps), int(settings["steps"]))
    atk = cls(model, **settings)
    atk.name = name
    return atk
