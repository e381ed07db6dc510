"""C&W-L∞ / C&W-L2: PGD on the Carlini-Wagner margin loss (Carlini & Wagner, IEEE S&P 2017).

"Towards Evaluating the Robustness of Neural Networks" (arXiv 1608.04644). Not C&W's own
optimisation (Adam on a distance-plus-penalty objective) but their margin loss, max other
logit − true logit, driven by L∞ PGD as in Madry et al.'s evaluation (arXiv 1706.06083):
the "CW-L∞" of the robustness literature. For the papers' own, weaker C&W see ``cw-paper``.

Settings: 30 steps, α = 0.8/255, no random start, margin loss, eot_iter 1, first-success
return (the last iterate on a randomised model; docs/protocol.md §6.2); in the standard
leaderboard battery. Under the L2 threat model
the same PGD runs in the L2 ball with α = 2.5 · ε / 30 (``pgd.L2_STEP``; 0.0417 at ε = 0.5). Deterministic: draws
nothing from ``generator``. Returns x_adv, per point the first misclassified iterate, else
the last.

Example::

    atk = create_attack("cw", model, eps=8/255)
    x_adv = atk(x, y)
"""

from __future__ import annotations

from .base import register_attack
from .pgd import L2_STEP, PGD


@register_attack("cw", steps=30, step_size=0.8 / 255, random_start=False, loss="margin",
                 per_norm={"L2": {"step_size": L2_STEP}})
class CWLinf(PGD):
    pass
