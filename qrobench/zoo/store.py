"""A zoo folder: ``<name>.json`` cards beside their ``.safetensors`` checkpoints."""

from __future__ import annotations

import os
from pathlib import Path

import torch.nn as nn

from ..errors import QrobenchError, UnknownNameError
from ..models.registry import create_model
from .card import ModelCard
from .checkpoint import load_deployed

ENV_VAR = "QROBENCH_ZOO"


def default_zoo_dir() -> Path:
    env = os.environ.get(ENV_VAR)
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[2] / "model_zoo"


class Zoo:
    def __init__(self, root: str | os.PathLike | None = None):
        self.root = Path(root) if root is not None else default_zoo_dir()
        if not self.root.is_dir():
            raise QrobenchError(
                f"zoo folder {str(self.root)!r} does not exist; pass --zoo-dir or set {ENV_VAR}"
            )

    def cards(self) -> list[ModelCard]:
        return [ModelCard.read(p) for p in sorted(self.root.glob("*.json"))]

    def names(self) -> list[str]:
        return [p.stem for p in sorted(self.root.glob("*.json"))]

    def card(self, name: str) -> ModelCard:
        path = self.root / f"{name}.json"
        if not path.is_file():
            raise UnknownNameError("model", name, self.names())
        card = ModelCard.read(path)
        if card.name != name:
            raise QrobenchError(f"card {path} names the model {card.name!r}; rename the file or the field")
        return card

    def build(self, card: ModelCard) -> nn.Module:
        return create_model(card.architecture, **card.arch_args)

    def load(self, name: str) -> tuple[nn.Module, ModelCard]:
        card = self.card(name)
        model = self.build(card)
        load_deployed(model, card.checkpoint_path(), expected_sha256=card.sha256)
        model.eval()
        model.card = card
        return model, card
