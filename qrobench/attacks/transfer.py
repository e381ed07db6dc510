"""Transfer attack: PGD-20 examples crafted on a surrogate model, scored on the target.

Papernot, McDaniel & Goodfellow, "Transferability in Machine Learning: from Phenomena to
Black-Box Attacks using Adversarial Samples" (arXiv 1605.07277). A black-box check beside
the white-box attacks: a model whose own gradients are masked is still hit by examples
crafted on an ordinary surrogate (docs/protocol.md §8.3).

Settings: PGD-20 on the surrogate (α = 2/255, uniform random start, CE loss), L∞ ε.
The attack is handed a surrogate *model*; picking one from the zoo is the caller's job
(``Zoo.attack_options``; ``qrobench run --surrogate NAME``). A randomised surrogate (an
EnResNet) draws its noise from the attack's generator, so a transfer result repeats like
every other attack's.

Example::

    atk = create_attack("transfer", target, eps=8/255, surrogate=surrogate_model)
    x_adv = atk(x, y, generator=torch.Generator().manual_seed(0))
"""

from __future__ import annotations

import torch
import torch.nn as nn

from ..errors import QrobenchError
from ..models.noise import is_stochastic, noise_seed
from .base import Attack, register_attack
from .pgd import PGD


@register_attack("transfer")
class Transfer(Attack):
    white_box = False

    def __init__(self, model, surrogate: nn.Module | None = None, **kwargs):
        super().__init__(model, **kwargs)
        if not isinstance(surrogate, nn.Module):
            raise QrobenchError("the transfer attack needs a surrogate model: pass "
                                "attack_options={'transfer': {'surrogate': model}} (Zoo.attack_options "
                                "picks one from the zoo), or --surrogate NAME on the command line")
        card = getattr(surrogate, "card", None)
        self.surrogate_name = getattr(card, "name", None) or type(surrogate).__name__
        self.surrogate = surrogate.to(self.device).eval()
        self.surrogate.requires_grad_(False)
        self._surrogate_stochastic = is_stochastic(self.surrogate)
        self._pgd = PGD(self.surrogate, steps=20, step_size=2 / 255, random_start=True, loss="ce",
                        eps=self.eps, device=self.device, seed=self.seed)

    def settings(self):
        return {**super().settings(), "surrogate": self.surrogate_name, "crafting": "pgd20",
                "steps": 20, "step_size": 2 / 255, "random_start": True}

    def perturb(self, x, y, generator=None):
        if not self._surrogate_stochastic or generator is None:
            return self._pgd.perturb(x, y, generator)
        seed = int(torch.randint(0, 2**62, (1,), generator=generator, device=generator.device))
        with noise_seed(self.surrogate, seed, x.device):
            return self._pgd.perturb(x, y, generator)
