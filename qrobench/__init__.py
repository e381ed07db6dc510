"""qrobench: how much adversarial robustness does a quantized model keep, and at what size?

Python API (RobustBench style)::

    import qrobench
    model = qrobench.load_model("enres20-tnn")
    result = qrobench.evaluate(model, attacks=["pgd20", "cw"], n=500, seed=0)
"""

from __future__ import annotations

from ._version import __version__
from .engine.evaluate import evaluate as _evaluate


def load_model(name: str, zoo_dir=None, device: str = "cpu"):
    """The eval-ready ``nn.Module`` of a zoo model, holding its deployed (quantized) weights."""
    from .zoo.store import Zoo

    model, _ = Zoo(zoo_dir).load(name)
    return model.to(device)


def evaluate(model, attacks=("pgd20",), n: int = 1000, seed: int = 0, **kwargs) -> dict:
    """Evaluate ``model`` on the first ``n`` CIFAR-10 test points; returns the result dict.

    A model from ``load_model`` carries its card, so the result names it and its hash.
    """
    card = kwargs.pop("card", getattr(model, "card", None))
    return _evaluate(model, attacks=list(attacks), n=n, seed=seed, card=card, **kwargs)


def list_models(zoo_dir=None) -> list[str]:
    from .zoo.store import Zoo

    return Zoo(zoo_dir).names()


__all__ = ["__version__", "evaluate", "list_models", "load_model"]
