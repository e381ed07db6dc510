"""qrobench: how much adversarial robustness does a quantized model keep, and at what size?

Python API (RobustBench style)::

    import qrobench
    model = qrobench.load_model("enres20-tnn")
    result = qrobench.evaluate(model, attacks=["pgd20", "cw"], n=500, seed=0)
"""

from __future__ import annotations

from ._version import __version__
from .engine.evaluate import evaluate as _evaluate
from .engine.results import Result


def load_model(name: str, zoo_dir=None, device: str = "cpu"):
    """The eval-ready ``nn.Module`` of a zoo model (a registered architecture or a submitted
    factory), holding its deployed (quantized) weights."""
    from .zoo.store import Zoo

    model, _ = Zoo(zoo_dir).load(name)
    return model.to(device)


def evaluate(model, attacks=("pgd20",), n: int = 1000, seed: int = 0, *, zoo_dir=None,
             surrogate: str | None = None, command: str | None = None, **kwargs) -> Result:
    """Evaluate ``model`` on the first ``n`` CIFAR-10 test points; returns the result record
    (``result.clean_acc`` or ``result["clean_acc"]``; ``qrobench.engine.write_result`` saves it).

    A model from ``load_model`` carries its card, so the result names it and its hash. The
    ``transfer`` attack crafts on a zoo model (``surrogate``, default res20-fp) unless
    ``attack_options={"transfer": {"surrogate": module}}`` hands it one.
    """
    card = kwargs.pop("card", getattr(model, "card", None))
    attacks = list(attacks)
    options = dict(kwargs.pop("attack_options", {}))
    if "transfer" in attacks and "surrogate" not in options.get("transfer", {}):
        from .zoo.store import Zoo

        zoo_options = Zoo(zoo_dir).attack_options(attacks, getattr(card, "name", None), surrogate)
        options["transfer"] = {**options.get("transfer", {}), **zoo_options["transfer"]}
    if command is None:
        command = f"qrobench.evaluate({getattr(card, 'name', type(model).__name__)!r}, attacks={attacks!r}, n={n}, seed={seed})"
    return _evaluate(model, attacks=attacks, n=n, seed=seed, card=card, command=command,
                     attack_options=options, **kwargs)


def list_models(zoo_dir=None) -> list[str]:
    from .zoo.store import Zoo

    return Zoo(zoo_dir).names()


__all__ = ["__version__", "evaluate", "list_models", "load_model"]
