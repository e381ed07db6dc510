"""The model zoo: model cards, deployed safetensors checkpoints, and the folder that holds them."""

from .card import REQUIRED_FIELDS, ModelCard
from .checkpoint import file_sha256, load_deployed, save_deployed
from .store import Zoo, default_zoo_dir

__all__ = [
    "REQUIRED_FIELDS", "ModelCard", "Zoo", "default_zoo_dir", "file_sha256", "load_deployed",
    "save_deployed",
]
