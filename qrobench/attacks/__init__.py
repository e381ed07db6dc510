"""The attack battery; each attack lives in its own module and registers itself by name."""

from . import autoattack, cw, cw_paper, fgsm, pgd, square, transfer  # noqa: F401  (registration)
from .base import (
    ATTACKS,
    Attack,
    check_attack_names,
    create_attack,
    list_attacks,
    margin_loss,
    register_attack,
)

__all__ = [
    "ATTACKS", "Attack", "check_attack_names", "create_attack", "list_attacks", "margin_loss",
    "register_attack",
]
