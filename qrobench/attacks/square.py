"""Square Attack (Andriushchenko et al., 2020): gradient-free, 5,000 queries, from pyautoattack.

The black-box check beside the white-box attacks: it cannot be fooled by zero or
obfuscated gradients.
"""

from __future__ import annotations

from .autoattack import _AutoAttackPart
from .base import register_attack


@register_attack("square")
class Square(_AutoAttackPart):
    white_box = False
    n_queries, p_init, n_restarts = 5000, 0.8, 1

    def settings(self):
        return {**super().settings(), "implementation": "pyautoattack.SquareAttack",
                "n_queries": self.n_queries, "p_init": self.p_init, "n_restarts": self.n_restarts,
                "loss": "margin"}

    def perturb(self, x, y, generator=None):
        from pyautoattack.square import SquareAttack

        atk = SquareAttack(self.model, norm="Linf", n_queries=self.n_queries, eps=self.eps,
                           p_init=self.p_init, n_restarts=self.n_restarts,
                           seed=self._torch_seed(generator), verbose=False, device=x.device,
                           resc_schedule=False)
        return atk.perturb(x.contiguous(), y).detach()
