"""A zoo folder: ``<name>.json`` cards beside their ``.safetensors`` checkpoints.

The one loader of zoo entries, whether the card names a registered qrobench architecture
or a submitted ``factory:package.module:fn``; the sha256 is checked either way.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch.nn as nn

from ..errors import QrobenchError, UnknownNameError
from ..models.registry import create_model
from .card import ModelCard
from .checkpoint import load_deployed
from .factory import FACTORY_PREFIX, build_from_factory, is_factory_card

ENV_VAR = "QROBENCH_ZOO"
# The transfer attack crafts on the first of these that is in the zoo and is not the target.
SURROGATE_PREFERENCE = ("res20-fp", "enres20-fp")


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
        """The card's network with freshly initialised weights."""
        if is_factory_card(card):
            return build_from_factory(card.architecture[len(FACTORY_PREFIX):], card.arch_args)
        return create_model(card.architecture, **card.arch_args)

    def load(self, name: str, twin: nn.Module | None = None) -> tuple[nn.Module, ModelCard]:
        """The entry as evaluated: toolkit formats come back ready to attack (an int8 or ONNX
        Runtime model wrapped with its twin for BPDA — ``twin``, else derived from the model —,
        a Brevitas model materialised)."""
        card = self.card(name)
        if card.format == "onnx":
            from ..toolkits.onnx_models import load_onnx

            model = load_onnx(card.checkpoint_path(), twin=twin, expected_sha256=card.sha256)
        else:
            model = self.build(card)
            load_deployed(model, card.checkpoint_path(), expected_sha256=card.sha256)
            model.eval()
            if card.format != "torch" or twin is not None:
                from ..toolkits import prepare

                model = prepare(model, twin=twin)
        model.eval()
        model.card = card
        return model, card

    def surrogate_name(self, target: str | None, name: str | None = None) -> str:
        """The zoo model the ``transfer`` attack crafts on for ``target``: ``name`` if given, else
        the first of ``SURROGATE_PREFERENCE`` that is in the zoo and is not the target."""
        if name is not None:
            self.card(name)  # an unknown name fails here, with the valid ones
            return name
        choices = [s for s in SURROGATE_PREFERENCE if s != target and s in self.names()]
        if not choices:
            raise QrobenchError("the transfer attack needs a surrogate model: none of "
                                f"{', '.join(SURROGATE_PREFERENCE)} is in the zoo {self.root}; pass --surrogate NAME")
        return choices[0]

    def attack_options(self, attacks, target: str | None, surrogate: str | None = None) -> dict:
        """Per-attack options that need zoo models (the transfer surrogate), for ``EvalConfig``."""
        if "transfer" not in attacks:
            return {}
        model, _ = self.load(self.surrogate_name(target, surrogate))
        return {"transfer": {"surrogate": model}}
