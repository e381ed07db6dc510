"""The leaderboard's protocol in one place, so that submissions, the leaderboard and the docs agree.

Every leaderboard entry is measured with these settings (PROTOCOL.md section 6); a
submission cannot choose a weaker battery for itself, only add attacks to it.
"""

from __future__ import annotations

LEADERBOARD_EPS = 8 / 255
LEADERBOARD_N = 1000  # first N CIFAR-10 test points
LEADERBOARD_SEED = 0

# The standard battery: one-step, iterative (CE and margin loss) and gradient-free.
STANDARD_BATTERY = ("fgsm", "pgd20", "cw", "square")
# Randomised models additionally get an EOT attack and are scored over several seeds.
STOCHASTIC_ATTACK = "eot-pgd20"
EOT_ATTACKS = ("eot-pgd20", "aa-rand")
STOCHASTIC_REPEATS = 3

# A near-constant model "survives" every attack without being robust (PROTOCOL.md section 8.4).
# 0.20 is twice chance on CIFAR-10's ten classes.
CLEAN_ACC_FLOOR = 0.20

# Bits per quantized weight as stored (ternary's log2(3) ≈ 1.58 is packed in 2 bits).
PRECISION_BITS = {"fp": 32, "4bit": 4, "tnn": 2, "bnn": 1}


def precision_bits(precision: str | None) -> float | None:
    """Bits per weight of a precision token; None where it depends on the model (``mixed``)."""
    if precision in PRECISION_BITS:
        return float(PRECISION_BITS[precision])
    if precision and precision.endswith("bit") and precision[:-3].isdigit():
        return float(precision[:-3])
    return None


def battery_for(stochastic: bool, attacks=None) -> list[str]:
    """The leaderboard battery (or ``attacks``), plus EOT for a randomised model."""
    names = list(attacks) if attacks else list(STANDARD_BATTERY)
    if stochastic and not any(a in EOT_ATTACKS for a in names):
        names.append(STOCHASTIC_ATTACK)
    return names
