"""Training: adversarial training recipes, BinaryRelax quantization, the trade-off loss, export."""

from .recipes import RECIPES, Recipe, get_recipe, register_recipe
from .trainer import TrainConfig, train

__all__ = ["RECIPES", "Recipe", "TrainConfig", "get_recipe", "register_recipe", "train"]
