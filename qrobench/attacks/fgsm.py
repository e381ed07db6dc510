"""FGSM: one signed gradient step of size ε (Goodfellow, Shlens & Szegedy, ICLR 2015).

"Explaining and Harnessing Adversarial Examples" (arXiv 1412.6572). The weakest white-box
attack of the battery, kept because it is cheap and in the papers' tables; it is in the
standard leaderboard battery (docs/protocol.md §6.2, §6.6).

Settings: 1 step, step size = ε, CE loss, no random start. Deterministic: draws nothing from
``generator``. Returns x_adv = clip(x + ε·sign(∇ₓ CE), ε-ball, [0, 1]) for every point,
successful or not; in the L2 ball the step is ε·∇/‖∇‖₂ (the fast gradient method); ``diagnostics["zero_grad_frac"]`` is the fraction of points whose
gradient is all zero or non-finite.

Example::

    atk = create_attack("fgsm", model, eps=8/255)
    x_adv = atk(x, y)
"""

from __future__ import annotations

from .base import Attack, ce_loss, register_attack
from .gradient import ascent_direction, input_gradient, project, zero_grad_fraction


@register_attack("fgsm")
class FGSM(Attack):
    norms = ("Linf", "L2")

    def perturb(self, x, y, generator=None):
        g, _ = input_gradient(self.model, x, y, ce_loss)
        self.diagnostics["zero_grad_frac"] = zero_grad_fraction(g)
        return project(x + self.eps * ascent_direction(g, self.norm), x, self.eps, self.norm).detach()

    def settings(self):
        return {**super().settings(), "steps": 1, "step_size": self.eps, "loss": "ce"}
