"""C&W-L∞: PGD on the Carlini-Wagner margin loss (max other logit − true logit)."""

from __future__ import annotations

from .base import register_attack
from .pgd import PGD


@register_attack("cw", steps=30, step_size=0.8 / 255, random_start=False, loss="margin")
class CWLinf(PGD):
    pass
