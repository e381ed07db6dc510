"""The benchmark's vocabulary in one place: precisions, ε, the leaderboard battery and its rules.

Everything that names a precision, parses or prints an ε, or decides what the leaderboard
protocol asks for imports it from here, so the engine, the zoo, submissions, checks and
reports cannot drift apart (docs/protocol.md §3, §4, §6).
"""

from __future__ import annotations

import argparse
import re
from dataclasses import dataclass
from fractions import Fraction

# ---------------------------------------------------------------------------------------------
# Precisions (docs/protocol.md §4)

FLOAT_BITS = 32


@dataclass(frozen=True)
class Precision:
    """A weight precision: its token, the bits a packed weight takes, and the integer codes a
    deployed layer may hold (sign-magnitude; ternary is packed in 2 bits though log2 3 ≈ 1.58)."""

    token: str
    bits: int  # bits per stored weight; 32 for float
    levels: int | None  # the most distinct values a deployed layer may hold; None for float

    @property
    def is_float(self) -> bool:
        return self.levels is None

    @property
    def code_range(self) -> tuple[int, int]:
        """Smallest and largest integer code of a deployed layer."""
        if self.is_float:
            raise ValueError("a float precision has no integer codes")
        if self.token in ("bnn", "tnn"):
            return (-1, 1)
        k = 2 ** (self.bits - 1) - 1
        return (-k, k)


NAMED_PRECISIONS = {
    "fp": Precision("fp", FLOAT_BITS, None),
    "4bit": Precision("4bit", 4, 15),
    "tnn": Precision("tnn", 2, 3),
    "bnn": Precision("bnn", 1, 2),
}
MIXED = "mixed"  # per-layer bit-widths; the model's bits are the size-weighted mean
# Tokens a zoo name or card may use, widest first (the order plots and tables use).
PRECISION_TOKENS = ("fp", MIXED, "4bit", "tnn", "bnn")
_KBIT = re.compile(r"^(\d+)bit$")


def precision(token: str) -> Precision:
    """The precision named ``token``: fp, 4bit, tnn, bnn or any ``<b>bit`` with 2 ≤ b ≤ 8."""
    if token in NAMED_PRECISIONS:
        return NAMED_PRECISIONS[token]
    m = _KBIT.match(token or "")
    if m and 2 <= int(m.group(1)) <= 8:
        b = int(m.group(1))
        return Precision(token, b, 2 ** b - 1)
    raise ValueError(f"unknown precision {token!r}; valid: {', '.join(NAMED_PRECISIONS)} or <b>bit (2..8)")


def is_precision_token(token: str) -> bool:
    """A token a card may declare: one of ``PRECISION_TOKENS`` or ``<b>bit``."""
    if token == MIXED:
        return True
    try:
        precision(token)
    except ValueError:
        return False
    return True


def precision_for_bits(bits: int) -> str:
    """The token of a per-layer bit-width (mixed precision): 32 and more is float, 1 is binary."""
    if bits >= FLOAT_BITS:
        return "fp"
    return "bnn" if int(bits) == 1 else f"{int(bits)}bit"


def precision_bits(token: str | None) -> float | None:
    """Bits per weight of a token; None where it depends on the model (``mixed``) or is unknown."""
    try:
        return float(precision(token).bits)
    except ValueError:
        return None


# ---------------------------------------------------------------------------------------------
# ε: one parser, one formatter (docs/protocol.md §6)

LEADERBOARD_EPS = 8 / 255


def check_eps(value) -> float:
    """ε as a radius on [0, 1] pixels: a number in (0, 1]; the one place that says so."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value <= 1:
        raise ValueError(f"ε must be in (0, 1] (pixels are in [0, 1]; 8/255 ≈ 0.0314), got {value!r}")
    return float(value)


def parse_eps(text: str) -> float:
    """A number or a fraction such as ``8/255``, in (0, 1] (pixels are in [0, 1])."""
    try:
        value = float(Fraction(str(text).strip()))
    except (ValueError, ZeroDivisionError):
        raise ValueError(f"ε must be a number or a fraction like 8/255, got {text!r}") from None
    try:
        return check_eps(value)
    except ValueError:
        raise ValueError(f"ε must be in (0, 1] (pixels are in [0, 1]; 8/255 ≈ 0.0314), got {text!r}") from None


def parse_eps_list(text: str) -> list[float]:
    """One ε or a comma-separated list (``2/255,4/255,8/255``) for an ε curve, no repeats."""
    values = [parse_eps(t) for t in str(text).split(",") if t.strip()]
    if not values:
        raise ValueError("ε needs a value such as 8/255")
    if len(set(values)) != len(values):
        raise ValueError(f"ε list {text!r} names a value twice")
    return values


def eps_arg(text: str) -> float:
    """``argparse`` type for one ε."""
    try:
        return parse_eps(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def eps_list_arg(text: str) -> list[float]:
    """``argparse`` type for an ε or a list of them."""
    try:
        return parse_eps_list(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def eps_text(eps: float) -> str:
    """ε as people write it: ``8/255`` (a decimal where no small fraction is exact)."""
    f = Fraction(float(eps)).limit_denominator(1000)
    return str(f) if abs(float(f) - float(eps)) < 1e-9 else f"{float(eps):g}"


def eps_tag(eps: float) -> str:
    """ε for a file name: ``8-255`` (or the decimal value when it is no whole k/255)."""
    k = float(eps) * 255
    return f"{round(k):d}-255" if abs(k - round(k)) < 1e-6 else f"{float(eps):.5f}"


def setting_text(value):
    """An attack setting for people: step sizes and budgets as k/255, the rest as is."""
    if isinstance(value, float):
        k = value * 255
        return f"{round(k, 2):g}/255" if abs(k - round(k, 1)) < 1e-6 and 0 < k < 64 else f"{value:g}"
    return value


# ---------------------------------------------------------------------------------------------
# Threat models (docs/protocol.md §6): what the adversary or the fault may change, and what ε means.


@dataclass(frozen=True)
class ThreatModel:
    """One threat model: its token (the ``threat_model`` field of every result), what it
    perturbs, the meaning and default of its budget ε, and whether this version measures it.

    Input threats perturb the image (``norm`` names the ball for the attacks: ``Linf``/``L2``);
    weight threats perturb the deployed integer codes. A token that is declared but not
    ``implemented`` is refused with a message, so results of a later version stay readable."""

    token: str
    target: str  # "input" or "weights"
    norm: str | None  # "Linf" / "L2" for an ε-ball around the image; None where ε is no radius
    budget: str  # what ε is, for people
    default_eps: float | None
    implemented: bool = False

    @property
    def is_norm_ball(self) -> bool:
        return self.norm is not None


THREAT_MODELS = {t.token: t for t in (
    ThreatModel("linf", "input", "Linf", "L∞ radius on [0, 1] pixels", 8 / 255, implemented=True),
    ThreatModel("l2", "input", "L2", "L2 radius on [0, 1] images", 0.5, implemented=True),
    ThreatModel("corruptions", "input", None, "corruption severity 1-5", None, implemented=True),
    ThreatModel("bit-errors", "weights", None, "bit error rate of the stored codes", None, implemented=True),
    ThreatModel("bit-flip", "weights", None, "number of flipped code bits", None, implemented=True),
)}
DEFAULT_THREAT_MODEL = "linf"
# the ``norm`` field of files written before results named their threat model
_THREAT_OF_NORM = {t.norm: t.token for t in THREAT_MODELS.values() if t.norm}


def threat_model(token: str | None = None, *, require_implemented: bool = True) -> ThreatModel:
    """The threat model named ``token`` (default linf); refuses unknown and not-yet-measured ones."""
    token = DEFAULT_THREAT_MODEL if token is None else str(token).strip().lower()
    tm = THREAT_MODELS.get(token)
    if tm is None:
        raise ValueError(f"unknown threat model {token!r}; valid: {', '.join(THREAT_MODELS)}")
    if require_implemented and not tm.implemented:
        done = ", ".join(t for t, m in THREAT_MODELS.items() if m.implemented)
        raise ValueError(f"threat model {token!r} is declared but not measured by this version of "
                         f"qrobench; measured now: {done}")
    return tm


def threat_model_of_norm(norm: str | None) -> str:
    """The threat model token of a result that only stored its ``norm`` (older files)."""
    if norm is None:
        return DEFAULT_THREAT_MODEL
    try:
        return _THREAT_OF_NORM[norm]
    except KeyError:
        raise ValueError(f"a result's norm {norm!r} names no threat model "
                         f"(known norms: {', '.join(_THREAT_OF_NORM)})") from None


# ---------------------------------------------------------------------------------------------
# The leaderboard protocol (docs/protocol.md §6, §8)

LEADERBOARD_N = 1000  # first N CIFAR-10 test points
DEFAULT_DATASET = "cifar10"  # data.registry names the data sets
LEADERBOARD_SEED = 0

# The standard battery: one-step, iterative (CE and margin loss), gradient-free, and AutoAttack
# (the standard version for deterministic models, the EOT version for randomised ones).
STANDARD_BATTERY = ("fgsm", "pgd20", "cw", "square")
# Per threat model with an ε-ball. The names are the same: each attack searches the ball of the
# run's threat model with that ball's settings (attacks/: ``per_norm``; docs/protocol.md §6.2), so
# the diagnostics and the leaderboard's AutoAttack rule read every threat model alike.
BATTERIES = {"linf": STANDARD_BATTERY, "l2": STANDARD_BATTERY}
AUTOATTACK, AUTOATTACK_RAND = "aa", "aa-rand"
# Randomised models additionally get an EOT attack and are scored over several seeds.
STOCHASTIC_ATTACK = "eot-pgd20"
EOT_ATTACKS = ("eot-pgd20", "aa-rand")
STOCHASTIC_REPEATS = 3
# The precisions the PGD family's gradient passes may run in (--grad-precision; attacks/gradient.py):
# fp32, every zoo row's, or bf16 under autocast, with every success still decided in fp32.
GRAD_PRECISIONS = ("fp32", "bf16")

# A near-constant model "survives" every attack without being robust (docs/protocol.md §8.4).
# 0.20 is twice chance on CIFAR-10's ten classes.
CLEAN_ACC_FLOOR = 0.20


def default_repeats(stochastic: bool) -> int:
    """Seeds averaged when the caller does not say: several for a randomised model, else one."""
    return STOCHASTIC_REPEATS if stochastic else 1


def has_eot(attacks) -> bool:
    return any(a in EOT_ATTACKS for a in attacks)


def battery_for(stochastic: bool, attacks=None, threat_model: str = DEFAULT_THREAT_MODEL) -> list[str]:
    """The leaderboard battery for a model under ``threat_model`` (or ``attacks``, plus EOT for
    a randomised model).

    Deterministic: fgsm, pgd20, cw, square, aa. Randomised: fgsm, pgd20, cw, square, eot-pgd20,
    aa-rand (AutoAttack's own version for randomised defences). The same names for ``linf`` and
    ``l2``: the threat model sets the ball each one searches."""
    token = DEFAULT_THREAT_MODEL if threat_model is None else str(threat_model).strip().lower()
    if token not in BATTERIES:
        raise ValueError(f"threat model {token!r} has no attack battery; batteries: {', '.join(BATTERIES)}")
    if not attacks:
        base = BATTERIES[token]
        return [*base, STOCHASTIC_ATTACK, AUTOATTACK_RAND] if stochastic else [*base, AUTOATTACK]
    names = list(attacks)
    if stochastic and not has_eot(names):
        names.append(STOCHASTIC_ATTACK)
    return names
