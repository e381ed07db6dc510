"""L∞ PGD (Madry et al., 2018) and the configurations built on it.

Returns, per point, the first iterate that the model misclassified (or the last one), so
that a success found mid-way is never lost by a later step.
"""

from __future__ import annotations

import torch

from .base import LOSSES, Attack, register_attack
from .gradient import input_gradient, project, zero_grad_fraction


class PGD(Attack):
    def __init__(self, model, steps: int = 20, step_size: float = 2 / 255, random_start: bool = True,
                 loss: str = "ce", eot_iter: int = 1, **kwargs):
        super().__init__(model, **kwargs)
        if loss not in LOSSES:
            raise ValueError(f"loss must be one of {sorted(LOSSES)}")
        self.steps, self.step_size = int(steps), float(step_size)
        self.random_start, self.loss, self.eot_iter = bool(random_start), loss, int(eot_iter)

    def settings(self):
        return {**super().settings(), "steps": self.steps, "step_size": self.step_size,
                "random_start": self.random_start, "loss": self.loss, "eot_iter": self.eot_iter,
                "returns": "first misclassified iterate, else last"}

    def perturb(self, x, y, generator=None):
        loss_fn = LOSSES[self.loss]
        x = x.detach()
        x_adv = x.clone()
        if self.random_start:
            u = torch.rand(x.shape, generator=generator, device=x.device, dtype=x.dtype)
            x_adv = project(x + (2 * u - 1) * self.eps, x, self.eps)
        best = x_adv.clone()
        found = torch.zeros(len(x), dtype=torch.bool, device=x.device)
        for step in range(self.steps):
            g, logits = input_gradient(self.model, x_adv, y, loss_fn, self.eot_iter)
            if step == 0:
                self.diagnostics["zero_grad_frac"] = zero_grad_fraction(g)
            fooled = (logits.argmax(1) != y) & ~found
            best[fooled] = x_adv[fooled]
            found |= fooled
            x_adv = project(x_adv + self.step_size * torch.sign(g), x, self.eps).detach()
        best[~found] = x_adv[~found]
        return best


@register_attack("pgd20", steps=20, step_size=2 / 255, random_start=True, loss="ce")
class PGD20(PGD):
    pass


@register_attack("ifgsm20", steps=20, step_size=1 / 255, random_start=False, loss="ce")
class IFGSM20(PGD):
    """The papers' I-FGSM-20 protocol: PGD without random start, α = 1/255."""


@register_attack("eot-pgd20", steps=20, step_size=2 / 255, random_start=True, loss="ce", eot_iter=10)
class EOTPGD20(PGD):
    """PGD-20 whose gradient is averaged over k noise draws (for randomised models)."""
