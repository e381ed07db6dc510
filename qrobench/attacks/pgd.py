"""PGD (Madry, Makelov, Schmidt, Tsipras & Vladu, ICLR 2018) and its configurations.

"Towards Deep Learning Models Resistant to Adversarial Attacks" (arXiv 1706.06083):
steepest-ascent steps of size α (signed gradient for L∞, the gradient over its L2 norm for
L2), each projected back onto the ε-ball and [0, 1]. Registered here (docs/protocol.md §6.2):
``pgd20`` (20 steps, α = 2/255, uniform random start, CE loss), ``ifgsm20`` (the papers'
I-FGSM-20: α = 1/255, no random start; L∞ only) and ``eot-pgd20`` (``pgd20`` with EOT over 10
noise draws); ``cw`` and ``transfer`` build on the same class. Under the L2 threat model
``pgd20``, ``eot-pgd20`` and ``cw`` take the step α = 2.5 · ε / steps (``L2_STEP``: 0.0625 for
20 steps at ε = 0.5), Madry et al.'s L2 rule, and start uniformly in the L2 ball.

Returns: with ``returns="first-success"`` x_adv holds, per point, the first iterate the
model misclassified, else the last, so that a success found mid-way is never lost by a later
step; a point stops taking steps (and costing passes) once it is found. ``returns="last"`` is
textbook PGD (the last iterate, no bookkeeping), which adversarial training uses. The default,
``"auto"``, is first-success on a deterministic model and last on a randomised one: there a
"misclassified" iterate was misclassified under one noise draw only, and stopping at it leaves
a point on the decision boundary that the scoring pass's fresh draw classifies correctly about
half the time (docs/protocol.md §6.4; measured on enres20-fp, n = 200: pgd20 49.0 %
first-success vs 39.0 % last).

Example::

    atk = create_attack("pgd20", model, eps=8/255)
    x_adv = atk(x, y, generator=torch.Generator().manual_seed(0))
"""

from __future__ import annotations

import torch

from .base import LOSSES, Attack, EpsStep, register_attack
from .gradient import (
    ascent_direction,
    box,
    check_grad_precision,
    decision_logits,
    input_gradient,
    project,
    random_start,
    zero_grad_fraction,
)

RETURNS = ("auto", "first-success", "last")
RETURNS_TEXT = {"first-success": "first misclassified iterate, else last", "last": "last iterate"}
# The L2 step (docs/protocol.md §6.2): α = 2.5 · ε / steps, the rule of Madry et al.'s robustness
# library for L2 PGD. The whole path is 2.5 ε: a start at the centre reaches the sphere in 40 % of the
# steps and can still cross the ball once along it. L∞'s fixed 2/255 would be 1/40 of ε = 0.5.
L2_STEP = EpsStep(2.5)


class PGD(Attack):
    """PGD in the L∞ or L2 ball (``norm``) with every setting open; not registered itself (its
    defaults are ``pgd20``'s).

    Settings: ``steps`` (20), ``step_size`` α (2/255; the registered names use ``L2_STEP`` in the
    L2 ball), ``random_start`` (True: uniform in the ε-ball), ``loss`` (``"ce"`` or ``"margin"``), ``eot_iter`` (1: gradients averaged
    over that many forward passes), ``returns`` (``"auto"``, ``"first-success"`` or ``"last"``;
    auto is last on a randomised model, see the module's docstring) and ``grad_precision``
    (``"fp32"``, or ``"bf16"``: gradient passes under bfloat16 autocast, successes still decided
    in fp32, see ``gradient.decision_logits``; recorded only when not fp32); all are recorded by
    ``settings()``, with auto resolved. The random start is drawn from ``generator`` on the
    generator's own device (a CPU generator serves a CUDA batch), from torch's global RNG
    when there is none. ``diagnostics["zero_grad_frac"]`` is the fraction of points whose
    first-step gradient is all zero or non-finite.

    Example::

        atk = PGD(model, steps=10, step_size=2/255, eps=8/255, returns="last")  # training
        x_adv = atk(x, y)
    """

    norms = ("Linf", "L2")

    def __init__(self, model, steps: int = 20, step_size: float = 2 / 255, random_start: bool = True,
                 loss: str = "ce", eot_iter: int = 1, returns: str = "auto", grad_precision: str = "fp32",
                 **kwargs):
        super().__init__(model, **kwargs)
        if loss not in LOSSES:
            raise ValueError(f"loss must be one of {sorted(LOSSES)}")
        if returns not in RETURNS:
            raise ValueError(f"returns must be one of {RETURNS}")
        self.steps, self.step_size = int(steps), float(step_size)
        self.random_start, self.loss, self.eot_iter = bool(random_start), loss, int(eot_iter)
        if returns == "auto":
            returns = "last" if self.randomised else "first-success"
        self.returns = returns
        self.grad_precision = check_grad_precision(grad_precision)

    def settings(self):
        s = {**super().settings(), "steps": self.steps, "step_size": self.step_size,
             "random_start": self.random_start, "loss": self.loss, "eot_iter": self.eot_iter,
             "returns": RETURNS_TEXT[self.returns]}
        if self.grad_precision != "fp32":  # fp32 records keep the keys they always had
            s["grad_precision"] = self.grad_precision
        return s

    def perturb(self, x, y, generator=None):
        loss_fn = LOSSES[self.loss]
        x = x.detach()
        x_adv = x.clone()
        if self.random_start:  # drawn where the generator lives (the trainer's is on the CPU)
            x_adv = random_start(x, self.eps, self.norm, generator)
        if self.returns == "last":  # training, randomised models: the final iterate, no bookkeeping
            for step in range(self.steps):
                g, _ = input_gradient(self.model, x_adv, y, loss_fn, self.eot_iter, self.grad_precision)
                if step == 0:
                    self.diagnostics["zero_grad_frac"] = zero_grad_fraction(g)
                x_adv = project(x_adv + self.step_size * ascent_direction(g, self.norm), x, self.eps, self.norm).detach()
            return x_adv
        # Only points not yet misclassified take further steps (the active batch shrinks as
        # points fall): a found point's iterate is final, so its later steps were wasted passes.
        # The active points' iterates, labels and ball are kept compact and are re-gathered only
        # on a step where some point fell; the L∞ ball is two precomputed bounds (gradient.box).
        best = x_adv.clone()
        idx = torch.arange(len(x), device=x.device)
        xa, ya, x0 = x_adv, y, x
        lo, hi = box(x, self.eps) if self.norm == "Linf" else (None, None)
        for step in range(self.steps):
            g, logits = input_gradient(self.model, xa, ya, loss_fn, self.eot_iter, self.grad_precision)
            if step == 0:
                self.diagnostics["zero_grad_frac"] = zero_grad_fraction(g)
            logits = decision_logits(self.model, xa, ya, logits, self.grad_precision)
            fooled = logits.argmax(1) != ya
            if fooled.any():
                best[idx[fooled]] = xa[fooled]
                keep = torch.nonzero(~fooled).flatten()
                if len(keep) == 0:
                    return best
                idx, xa, ya, x0, g = idx[keep], xa[keep], ya[keep], x0[keep], g[keep]
                if lo is not None:
                    lo, hi = lo[keep], hi[keep]
            if lo is not None:  # in place: xa is this loop's own tensor (best holds copies)
                xa = xa.add_(g.sign_(), alpha=self.step_size).clamp_(lo, hi)
            else:
                xa = project(xa + self.step_size * ascent_direction(g, self.norm), x0, self.eps, self.norm)
        best[idx] = xa
        return best


@register_attack("pgd20", steps=20, step_size=2 / 255, random_start=True, loss="ce",
                 per_norm={"L2": {"step_size": L2_STEP}})
class PGD20(PGD):
    """``pgd20``: Madry et al.'s PGD (arXiv 1706.06083) as qrobench's main gradient attack.

    Settings: 20 steps, α = 2/255 (L2: α = 2.5 · ε / 20, 0.0625 at ε = 0.5), uniform random
    start in the ε-ball (from ``generator``), CE loss, eot_iter 1, first-success return (the
    last iterate on a randomised model; docs/protocol.md §6.2). In the standard
    leaderboard battery and the CI check (``qrobench check``). Returns x_adv, per point the
    first misclassified iterate, else the last.

    Example::

        atk = create_attack("pgd20", model, eps=8/255)
        x_adv = atk(x, y, generator=torch.Generator().manual_seed(0))
    """


@register_attack("ifgsm20", steps=20, step_size=1 / 255, random_start=False, loss="ce")
class IFGSM20(PGD):
    """``ifgsm20``: the EnResNet papers' I-FGSM-20, a paper protocol (docs/protocol.md §6.2).

    I-FGSM is the basic iterative method of Kurakin, Goodfellow & Bengio, "Adversarial
    examples in the physical world" (arXiv 1607.02533): PGD without random start. Settings:
    20 steps, α = 1/255, no random start, CE loss, eot_iter 1, first-success return (the last
    iterate on a randomised model).
    Deterministic: draws nothing from ``generator``. Kept so that measured numbers can be set
    beside the published ones; weaker than ``pgd20``. L∞ only, as the papers measured it. Returns x_adv, per point the first
    misclassified iterate, else the last.

    Example::

        atk = create_attack("ifgsm20", model, eps=8/255)
        x_adv = atk(x, y)
    """

    norms = ("Linf",)


@register_attack("eot-pgd20", steps=20, step_size=2 / 255, random_start=True, loss="ce", eot_iter=10,
                 per_norm={"L2": {"step_size": L2_STEP}})
class EOTPGD20(PGD):
    """``eot-pgd20``: ``pgd20`` with Expectation over Transformation, for randomised models.

    EOT: Athalye, Engstrom, Ilyas & Kwok, "Synthesizing Robust Adversarial Examples", ICML
    2018 (arXiv 1707.07397), and against randomised defences Athalye, Carlini & Wagner,
    "Obfuscated Gradients Give a False Sense of Security", ICML 2018 (arXiv 1802.00420).
    Settings: as ``pgd20`` (20 steps, α = 2/255 or L2's 2.5 · ε / 20, random start, CE loss,
    first-success; the last iterate on a randomised model, which is what EOT is for), but
    each step's gradient is the mean over ``eot_iter`` = 10 forward passes, each with its own
    noise draw; change k with ``--eot-iter`` or ``attack_options={"eot-pgd20": {"eot_iter":
    k}}`` (docs/protocol.md §6.2, §6.4). Returns x_adv as ``pgd20`` does.

    Example::

        atk = create_attack("eot-pgd20", model, eps=8/255, eot_iter=10)
        x_adv = atk(x, y, generator=torch.Generator().manual_seed(0))
    """
