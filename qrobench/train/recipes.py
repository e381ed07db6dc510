"""Named training recipes, so that every zoo model is re-trained by one command its card names.

A new recipe is one ``register_recipe(Recipe(name=..., ...))`` call below: its name is what
``qrobench train --recipe`` and a model card's ``training.recipe`` refer to.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass

from ..protocol import LEADERBOARD_EPS
from ..registry import Registry


@dataclass(frozen=True)
class Recipe:
    name: str
    description: str
    adversary: str = "pgd10"  # pgd10 | nfgsm | none
    epochs: int = 200
    batch_size: int = 128
    lr: float = 0.1  # peak LR for onecycle, initial LR for step
    schedule: str = "step"  # step | onecycle
    milestones: tuple[int, ...] = (80, 120, 160)
    warmup_frac: float = 0.4
    momentum: float = 0.9
    nesterov: bool = True
    weight_decay: float = 5e-4
    eps: float = LEADERBOARD_EPS  # trained at the budget it is evaluated at
    pgd_step: float = 0.007
    pgd_steps: int = 10
    # BinaryRelax (only for quantized precisions)
    br_lambda0: float = 1.0
    br_rho: float = 1.05
    br_hard_epoch: int = 120  # first epoch of the hard phase u = Q(W)

    def with_(self, **kw) -> Recipe:
        return dataclasses.replace(self, **kw)

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)


RECIPE_REGISTRY: Registry[Recipe] = Registry("recipe")


def register_recipe(r: Recipe) -> Recipe:
    """File ``r`` under its own name (registered once: a retrained card must mean one recipe)."""
    return RECIPE_REGISTRY.register(r.name, r)


# name -> Recipe in registration order, for listings (``qrobench train --list``); live, read-only
RECIPES: Mapping[str, Recipe] = RECIPE_REGISTRY.mapping()


register_recipe(Recipe(
    name="paper-pgd",
    description="PGD-10 adversarial training (eps 8/255, step 0.007, random start), SGD Nesterov, "
                "wd 5e-4, batch 128, 200 epochs, LR 0.1 x0.1 at 80/120/160; BR hard phase from epoch 120",
))
register_recipe(Recipe(
    name="budget-nfgsm",
    description="N-FGSM adversarial training (noise U[-2eps,2eps], one eps step, no projection), "
                "SGD Nesterov, wd 5e-4, batch 128, one-cycle LR peak 0.2 (40% warm-up), 15 epochs",
    adversary="nfgsm", epochs=15, lr=0.2, schedule="onecycle", br_hard_epoch=12,
))
register_recipe(Recipe(
    name="budget-nfgsm-ft",
    description="BinaryRelax fine-tuning of an adversarially trained model with N-FGSM: "
                "one-cycle LR peak 0.05, 6 epochs, relaxed phase (lambda x1.5/epoch) then a hard phase for the last 2",
    adversary="nfgsm", epochs=6, lr=0.05, schedule="onecycle", warmup_frac=0.2, br_rho=1.5,
    br_hard_epoch=4,
))
register_recipe(Recipe(
    name="natural",
    description="standard training without an adversary, one-cycle LR peak 0.2, 15 epochs",
    adversary="none", epochs=15, lr=0.2, schedule="onecycle",
))


def get_recipe(name: str) -> Recipe:
    return RECIPE_REGISTRY.get(name)
