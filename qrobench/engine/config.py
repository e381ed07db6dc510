"""The one evaluation config: every entry point (``qrobench run``, ``check``, ``sweep``,
``submit``, ``qrobench.testing`` and ``qrobench.evaluate``) builds it with :func:`make_config`,
so attack names, ε, the threat model and the data set are validated once, in one wording.

The config is frozen: a run cannot change what it is measuring half-way, and a changed copy
(``dataclasses.replace``) is validated again. Errors name the keyword argument and, in
brackets, the command-line option, because both kinds of user read them.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from ..attacks.base import attack_norms, check_attack_names
from ..attacks.gradient import check_grad_precision
from ..data.registry import check_dataset
from ..errors import QrobenchError
from ..protocol import DEFAULT_DATASET, DEFAULT_THREAT_MODEL, ThreatModel, check_eps, threat_model
from .shards import WHOLE, Shard

# attacks whose number of noise draws per gradient ``eot_iter`` sets (the EOT draws)
EOT_ITER_ATTACKS = ("eot-pgd20",)


def _positive_int(name: str, flag: str, value, what: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise QrobenchError(f"{name} ({flag}) must be a positive whole number of {what}, got {value!r}")


@dataclass(frozen=True)
class EvalConfig:
    """What one evaluation measures and how; checked when built (``__post_init__``)."""

    attacks: tuple[str, ...] = ("pgd20",)
    n: int = 1000
    eps: float | None = None  # None: the threat model's default (8/255 for linf)
    threat_model: str = DEFAULT_THREAT_MODEL  # protocol.THREAT_MODELS
    dataset: str = DEFAULT_DATASET  # data.registry
    seed: int = 0
    batch_size: int = 250
    device: str = "auto"
    repeats: int | None = None  # None: protocol.default_repeats (1, or 3 for stochastic models)
    data_dir: str | None = None
    progress: bool = True
    attack_options: dict = field(default_factory=dict)  # per-attack extra kwargs
    channels_last: bool = True  # measured: ~2x faster conv fwd+bwd on the CPU (benchmarks/)
    stochastic: bool | None = None  # None: detect Feynman-Kac noise; True for other random models
    shard: Shard = WHOLE  # which whole batches of the first n points to evaluate (shards.py)
    cascade: bool = False  # attack a point only until one attack breaks it (worst case only)

    def __post_init__(self):
        attacks = (self.attacks,) if isinstance(self.attacks, str) else tuple(self.attacks or ())
        object.__setattr__(self, "attacks", attacks)
        try:
            tm = threat_model(self.threat_model)
        except ValueError as e:
            raise QrobenchError(f"threat_model (--threat-model): {e}") from None
        object.__setattr__(self, "threat_model", tm.token)
        if self.eps is None:
            object.__setattr__(self, "eps", tm.default_eps)
        object.__setattr__(self, "attack_options", {a: dict(o) for a, o in (self.attack_options or {}).items()})
        self._validate(tm)

    def _validate(self, tm: ThreatModel) -> None:
        if tm.target == "weights":
            raise QrobenchError(f"threat model {tm.token!r} perturbs the stored weights, not the input, so no attack "
                                f"battery runs under it: measure it with 'qrobench run --model M --threat-model "
                                f"{tm.token}' (qrobench.threats)")
        if not tm.is_norm_ball:
            raise QrobenchError(f"threat model {tm.token!r} is no ε-ball, so no attack battery runs under it: measure "
                                f"it with 'qrobench run --model M --threat-model {tm.token}' (qrobench.threats)")
        if not self.attacks:
            raise QrobenchError("attacks (--attacks) needs at least one attack name, e.g. pgd20")
        check_attack_names(self.attacks)
        dup = sorted({a for a in self.attacks if self.attacks.count(a) > 1})
        if dup:
            raise QrobenchError(f"attacks (--attacks) lists {', '.join(dup)} twice: {','.join(self.attacks)}")
        if tm.is_norm_ball:
            wrong = [a for a in self.attacks if tm.norm not in attack_norms(a)]
            if wrong:
                raise QrobenchError(f"attacks (--attacks): {', '.join(wrong)} do(es) not search the {tm.norm} ball "
                                    f"of threat model {tm.token!r}; 'qrobench attacks' lists each attack's norms")
        _positive_int("n", "--n", self.n, "test points")
        _positive_int("batch_size", "--batch-size", self.batch_size, "points per batch")
        if self.repeats is not None:
            _positive_int("repeats", "--repeats", self.repeats, "seeds")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise QrobenchError(f"seed (--seed) must be a whole number ≥ 0, got {self.seed!r}")
        if tm.is_norm_ball:
            try:
                check_eps(self.eps)
            except ValueError as e:
                raise QrobenchError(f"eps (--eps) is the {tm.budget}: {e}") from None
        try:
            check_dataset(self.dataset)
        except QrobenchError as e:
            raise QrobenchError(f"dataset (--dataset): {e}") from None
        unknown = sorted(set(self.attack_options) - set(self.attacks))
        if unknown:
            raise QrobenchError(f"attack_options names {', '.join(unknown)}, which is not in attacks "
                                f"({','.join(self.attacks)}); add it to the battery or drop its options")
        if not isinstance(self.shard, Shard):
            raise QrobenchError(f"shard (--shard) must be a Shard such as Shard.parse('0/2'), got {self.shard!r}")

    @property
    def norm(self) -> str | None:
        """The ε-ball the attacks search and the engine checks (``Linf``/``L2``)."""
        return threat_model(self.threat_model).norm

    def replace(self, **changes) -> EvalConfig:
        """A validated copy with ``changes``."""
        return dataclasses.replace(self, **changes)


def grad_precision_attacks(attacks) -> list[str]:
    """The attacks of ``attacks`` whose gradient passes ``grad_precision`` sets: the PGD family
    (pgd20, ifgsm20, eot-pgd20, cw), whose steps are nearly all of a battery's passes."""
    from ..attacks.base import ATTACKS
    from ..attacks.pgd import PGD

    return [a for a in attacks if issubclass(ATTACKS.get(a)[0], PGD)]


def resolve_attack_options(attacks, target: str | None = None, *, zoo_dir=None, surrogate=None,
                           eot_iter: int | None = None, grad_precision: str | None = None,
                           given: dict | None = None) -> dict:
    """Per-attack options that come from outside the attack: the transfer surrogate (a zoo
    model, loaded only when ``transfer`` is in the battery and no module was given), the
    EOT draws per gradient and the precision of the PGD family's gradient passes. ``given``
    (the caller's own ``attack_options``) wins."""
    attacks = list(attacks)
    options = {a: dict(o) for a, o in (given or {}).items()}
    if surrogate is not None and "transfer" not in attacks:
        raise QrobenchError("surrogate (--surrogate) only applies to the 'transfer' attack; add it to attacks")
    if "transfer" in attacks and "surrogate" not in options.get("transfer", {}):
        from ..zoo.store import Zoo

        options.setdefault("transfer", {}).update(Zoo(zoo_dir).attack_options(attacks, target, surrogate)["transfer"])
    if eot_iter is not None:
        _positive_int("eot_iter", "--eot-iter", eot_iter, "noise draws per gradient")
        eot = [a for a in attacks if a in EOT_ITER_ATTACKS]
        if not eot:
            raise QrobenchError(f"eot_iter (--eot-iter) sets the noise draws of {', '.join(EOT_ITER_ATTACKS)}; "
                                "add one to attacks")
        for a in eot:
            options.setdefault(a, {})["eot_iter"] = eot_iter
    if grad_precision is not None:
        try:
            check_grad_precision(grad_precision)
        except ValueError as e:
            raise QrobenchError(f"{e} (--grad-precision)") from None
        family = grad_precision_attacks(attacks)
        if grad_precision != "fp32" and not family:
            raise QrobenchError(f"grad_precision (--grad-precision) sets the gradient passes of the PGD family "
                                f"(pgd20, ifgsm20, eot-pgd20, cw); none is in attacks ({','.join(attacks)})")
        for a in family:
            options.setdefault(a, {}).setdefault("grad_precision", grad_precision)
    return options


def make_config(attacks=("pgd20",), *, target: str | None = None, zoo_dir=None, surrogate=None,
                eot_iter: int | None = None, grad_precision: str | None = None, attack_options: dict | None = None,
                **fields) -> EvalConfig:
    """The config every entry point builds: attack names, ε, threat model and data set checked
    once, and the attack options that need the zoo resolved for ``target`` (the model's name)."""
    attacks = [attacks] if isinstance(attacks, str) else list(attacks)
    unknown = sorted(set(fields) - {f.name for f in dataclasses.fields(EvalConfig)})
    if unknown:
        valid = ", ".join(f.name for f in dataclasses.fields(EvalConfig) if f.name not in ("attacks", "attack_options"))
        raise QrobenchError(f"unknown evaluation setting(s) {', '.join(unknown)}; valid: {valid}")
    # names first, so that a typo is reported before the zoo loads a surrogate
    EvalConfig(attacks=tuple(attacks), **{k: v for k, v in fields.items() if k != "attack_options"})
    options = resolve_attack_options(attacks, target, zoo_dir=zoo_dir, surrogate=surrogate,
                                     eot_iter=eot_iter, grad_precision=grad_precision, given=attack_options)
    return EvalConfig(attacks=tuple(attacks), attack_options=options, **fields)
