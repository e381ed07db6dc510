"""Assertions for users' own test suites, e.g. in CI after a training or quantization change::

    from qrobench.testing import assert_robust

    def test_model_stays_robust():
        model = build_and_load_my_model()
        assert_robust(model, attack="pgd20", min_acc=0.40, n=200)

The check runs qrobench's protocol (first ``n`` CIFAR-10 test points in order, L∞ ε, a
fixed seed) and fails with a message that says what was measured against what was required.
"""

from __future__ import annotations

from .engine.config import make_config
from .engine.evaluate import evaluate
from .engine.results import Result
from .errors import QrobenchError
from .protocol import LEADERBOARD_EPS, eps_text

__all__ = ["assert_robust"]


def _check_fraction(name: str, v) -> None:
    if v is not None and not (isinstance(v, (int, float)) and 0 <= v <= 1):
        hint = f" (did you mean {v / 100:g}?)" if isinstance(v, (int, float)) and 1 < v <= 100 else ""
        raise QrobenchError(f"{name} is a fraction in [0, 1], got {v!r}{hint}")


def assert_robust(model, attack: str = "pgd20", min_acc: float = 0.40, n: int = 200, eps: float = LEADERBOARD_EPS,
                  seed: int = 0, *, min_clean_acc: float | None = None, data=None, data_dir=None,
                  device: str = "cpu", batch_size: int = 250, **options) -> Result:
    """Fail (AssertionError) unless ``model`` keeps at least ``min_acc`` accuracy under ``attack``.

    Accuracies are fractions of the ``n`` points (robust = correct and still correct after the
    attack). Randomised models are judged on the mean over seeds. Returns the result record.
    ``options`` are settings of :class:`qrobench.engine.EvalConfig` (e.g. ``repeats``), checked by
    :func:`qrobench.engine.make_config` as every entry point's are.
    """
    _check_fraction("min_acc", min_acc)
    _check_fraction("min_clean_acc", min_clean_acc)
    card = options.pop("card", getattr(model, "card", None))
    cfg = make_config([attack], n=n, seed=seed, eps=eps, data_dir=data_dir, device=device, batch_size=batch_size,
                      progress=False, target=getattr(card, "name", None), **options)
    r = evaluate(model, cfg, data=data, card=card, command=f"qrobench.testing.assert_robust({attack!r}, n={n})")
    acc, clean = r.robust_acc[attack], r.clean_acc
    std = r.std.robust_acc[attack]
    where = (f"n = {r.n} first CIFAR-10 test points, ε = {eps_text(eps)} (L∞), seed {seed}"
             + (f", mean ± std over {r.repeats} seeds" if r.repeats > 1 else ""))
    measured = f"{100 * acc:.2f} %" + (f" ± {100 * std:.2f}" if r.repeats > 1 else "")
    name = r.model
    if acc < min_acc:
        raise AssertionError(
            f"{name} is not robust enough: {attack} accuracy {measured} < required {100 * min_acc:.2f} % "
            f"(short by {100 * (min_acc - acc):.2f} percentage points; {where}; clean accuracy "
            f"{100 * clean:.2f} %)")
    if min_clean_acc is not None and clean < min_clean_acc:
        raise AssertionError(
            f"{name}: clean accuracy {100 * clean:.2f} % < required {100 * min_clean_acc:.2f} % ({where})")
    return r
