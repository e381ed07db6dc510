"""Transfer attack: PGD-20 examples crafted on a surrogate model, scored on the target."""

from __future__ import annotations

import torch.nn as nn

from .base import Attack, register_attack
from .pgd import PGD

DEFAULT_SURROGATE = "res20-fp"
FALLBACK_SURROGATE = "enres20-fp"


@register_attack("transfer")
class Transfer(Attack):
    white_box = False

    def __init__(self, model, surrogate: nn.Module | str | None = None, zoo=None,
                 target_name: str | None = None, **kwargs):
        super().__init__(model, **kwargs)
        if surrogate is None:
            surrogate = DEFAULT_SURROGATE if target_name != DEFAULT_SURROGATE else FALLBACK_SURROGATE
        if isinstance(surrogate, str):
            if zoo is None:
                from ..zoo.store import Zoo

                zoo = Zoo()
            self.surrogate_name = surrogate
            surrogate, _ = zoo.load(surrogate)
        else:
            self.surrogate_name = getattr(getattr(surrogate, "card", None), "name", type(surrogate).__name__)
        self.surrogate = surrogate.to(self.device).eval()
        self.surrogate.requires_grad_(False)
        self._pgd = PGD(self.surrogate, steps=20, step_size=2 / 255, random_start=True, loss="ce",
                        eps=self.eps, device=self.device, seed=self.seed)

    def settings(self):
        return {**super().settings(), "surrogate": self.surrogate_name, "crafting": "pgd20",
                "steps": 20, "step_size": 2 / 255, "random_start": True}

    def perturb(self, x, y, generator=None):
        return self._pgd.perturb(x, y, generator)
