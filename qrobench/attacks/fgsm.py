"""FGSM: one signed gradient step of size ε (Goodfellow et al., 2015)."""

from __future__ import annotations

import torch

from .base import Attack, ce_loss, register_attack
from .gradient import input_gradient, project, zero_grad_fraction


@register_attack("fgsm")
class FGSM(Attack):
    def perturb(self, x, y, generator=None):
        g, _ = input_gradient(self.model, x, y, ce_loss)
        self.diagnostics["zero_grad_frac"] = zero_grad_fraction(g)
        return project(x + self.eps * torch.sign(g), x, self.eps).detach()

    def settings(self):
        return {**super().settings(), "steps": 1, "step_size": self.eps, "loss": "ce"}
