"""Architectures and their registry (timm style: ``@register_model`` + ``create_model``)."""

from . import enresnet, resnet  # noqa: F401  (registers the built-in architectures)
from .noise import FeynmanKacNoise, is_stochastic, noise_seed, seed_noise
from .registry import (
    ARCHITECTURES,
    ArchConfig,
    create_model,
    list_models,
    model_arguments,
    register_model,
)

__all__ = [
    "ARCHITECTURES", "ArchConfig", "FeynmanKacNoise", "create_model", "is_stochastic", "list_models",
    "model_arguments", "noise_seed", "register_model", "seed_noise",
]
