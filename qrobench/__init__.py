"""qrobench: how much adversarial robustness does a quantized model keep, and at what size?

Python API (RobustBench style)::

    import qrobench
    model = qrobench.load_model("enres20-tnn")
    result = qrobench.evaluate(model, attacks=["pgd20", "cw"], n=500, seed=0)
"""

from __future__ import annotations

from ._version import __version__
from .engine.config import make_config
from .engine.evaluate import evaluate as _evaluate
from .engine.results import Result


def load_model(name: str, zoo_dir=None, device: str = "cpu"):
    """The eval-ready ``nn.Module`` of a zoo model (a registered architecture or a submitted
    factory), holding its deployed (quantized) weights."""
    from .zoo.store import Zoo

    model, _ = Zoo(zoo_dir).load(name)
    return model.to(device)


def evaluate(model, attacks=("pgd20",), n: int = 1000, seed: int = 0, *, data=None, card=None,
             zoo_dir=None, surrogate: str | None = None, eot_iter: int | None = None,
             command: str | None = None, journal=None, resume: bool = False, flags=(), expect_clean=None,
             cascade_from=None, cascade_attacks=None, **settings) -> Result:
    """Evaluate ``model`` on the first ``n`` test points; returns the result record
    (``result.clean_acc`` or ``result["clean_acc"]``; ``qrobench.engine.write_result`` saves it).

    ``settings`` are those of :class:`qrobench.engine.EvalConfig`: ``eps`` (default: the threat
    model's, 8/255 for ``threat_model="linf"``), ``dataset`` (``"cifar10"``), ``batch_size``,
    ``repeats``, ``device``, ``attack_options``, ``grad_precision`` (``"bf16"``: the PGD family's
    gradient passes under bfloat16 autocast, successes still decided in fp32), ... ``data`` replaces the data set's loader
    with points already in memory. A model from ``load_model`` carries its card, so the result
    names it and its hash. The ``transfer`` attack crafts on a zoo model (``surrogate``,
    default res20-fp) unless ``attack_options={"transfer": {"surrogate": module}}`` hands it one.
    ``expect_clean`` (a result of the same model) stops the run before its attacks if its clean
    predictions differ from that result's on the same points. ``cascade_from`` (a result or its
    path, of the same model and points) attacks only the points that its attacks
    (``cascade_attacks``, default all) left standing: an exact worst case for less compute, the
    attacks' own accuracies unknown (their outcomes count the earlier attacks' breaks too).
    """
    card = card if card is not None else getattr(model, "card", None)
    name = getattr(card, "name", None)
    attacks = [attacks] if isinstance(attacks, str) else list(attacks)
    cfg = make_config(attacks, n=n, seed=seed, target=name, zoo_dir=zoo_dir, surrogate=surrogate,
                      eot_iter=eot_iter, **settings)
    if command is None:
        command = f"qrobench.evaluate({name or type(model).__name__!r}, attacks={attacks!r}, n={n}, seed={seed})"
    if cascade_from is not None and not isinstance(cascade_from, Result):
        from .engine.results import read_result

        cascade_from = read_result(cascade_from)
    return _evaluate(model, cfg, data=data, card=card, command=command, journal=journal, resume=resume,
                     flags=flags, expect_clean=expect_clean, cascade_from=cascade_from,
                     cascade_attacks=cascade_attacks)


def list_models(zoo_dir=None) -> list[str]:
    from .zoo.store import Zoo

    return Zoo(zoo_dir).names()


__all__ = ["__version__", "evaluate", "list_models", "load_model", "make_config"]
