"""Architectures and their registry (timm style: ``@register_model`` + ``create_model``)."""

from . import enresnet, resnet  # noqa: F401  (registers the built-in architectures)
from .noise import FeynmanKacNoise, is_stochastic, noise_seed, seed_noise
from .registry import ArchConfig, create_model, list_models, register_model

__all__ = [
    "ArchConfig", "FeynmanKacNoise", "create_model", "is_stochastic", "list_models",
    "noise_seed", "register_model", "seed_noise",
]
