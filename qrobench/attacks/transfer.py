"""Transfer attack: PGD-20 examples crafted on a surrogate model, scored on the target.

A randomised surrogate (an EnResNet) draws its noise from the attack's generator, so a
transfer result is repeatable like every other attack's.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from ..models.noise import is_stochastic, noise_seed
from .base import Attack, register_attack
from .pgd import PGD

SURROGATE_PREFERENCE = ("res20-fp", "enres20-fp")


@register_attack("transfer")
class Transfer(Attack):
    white_box = False

    def __init__(self, model, surrogate: nn.Module | str | None = None, zoo=None,
                 target_name: str | None = None, **kwargs):
        super().__init__(model, **kwargs)
        if zoo is None and not isinstance(surrogate, nn.Module):
            from ..zoo.store import Zoo

            zoo = Zoo()
        if surrogate is None:
            choices = [s for s in SURROGATE_PREFERENCE if s != target_name and s in zoo.names()]
            if not choices:
                from ..errors import QrobenchError

                raise QrobenchError("the transfer attack needs a surrogate model: none of "
                                    f"{', '.join(SURROGATE_PREFERENCE)} is in the zoo; pass --surrogate NAME")
            surrogate = choices[0]
        if isinstance(surrogate, str):
            self.surrogate_name = surrogate
            surrogate, _ = zoo.load(surrogate)
        else:
            self.surrogate_name = getattr(getattr(surrogate, "card", None), "name", type(surrogate).__name__)
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
