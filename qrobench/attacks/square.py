"""Square Attack: gradient-free random search (Andriushchenko, Croce, Flammarion & Hein, ECCV 2020).

"Square Attack: a query-efficient black-box adversarial attack via random search" (arXiv
1912.00049), run from the official code (``pyautoattack.SquareAttack``). The black-box check
beside the white-box attacks: it cannot be fooled by zero or obfuscated gradients
(docs/protocol.md §8.3); in the standard leaderboard battery (§6.2, §6.6).

Settings: the run's norm (L∞, or L2 with pyautoattack's L2 proposals), 5,000 queries, p_init
0.8 with the schedule of p not rescaled to the budget (``resc_schedule=False``, as inside
AutoAttack, for both norms), 1 restart, margin loss. Its random
proposals are seeded with an integer drawn from ``generator`` (the attack's ``seed`` when
there is none). Returns x_adv: the adversarial example where found, else the clean input.

Example::

    atk = create_attack("square", model, eps=8/255)
    x_adv = atk(x, y, generator=torch.Generator().manual_seed(0))
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

        atk = SquareAttack(self.model, norm=self.norm, n_queries=self.n_queries, eps=self.eps,
                           p_init=self.p_init, n_restarts=self.n_restarts,
                           seed=self._torch_seed(generator), verbose=False, device=x.device,
                           resc_schedule=False)
        return atk.perturb(x.contiguous(), y).detach()
