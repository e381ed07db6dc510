"""AutoAttack's attacks, run from the official code (PyPI ``pyautoattack``) with its settings.

Croce & Hein, "Reliable evaluation of adversarial robustness with an ensemble of diverse
parameter-free attacks", ICML 2020 (arXiv 2003.01690): APGD and the AutoAttack cascade.
FAB-T: Croce & Hein, "Minimally distorted Adversarial Examples with a Fast Adaptive Boundary
Attack", ICML 2020 (arXiv 1907.02044). Square lives in square.py. ``apgd-ce``, ``apgd-t``
and ``fab-t`` run alone; ``aa`` is the standard cascade (APGD-CE → APGD-T → FAB-T → Square)
and ``aa-rand`` the version for randomised models (APGD-CE and APGD-DLR with 20 EOT
iterations); docs/protocol.md §6.2. Each runs in the ball of the run's threat model
(``norm``: L∞ or L2), with AutoAttack's standard settings, which are the same for both norms.

Each call seeds pyautoattack with an integer drawn from the batch's ``generator`` (the
attack's ``seed`` when there is none), so batches differ and a run repeats. Every attack
returns x_adv holding the adversarial example where one was found, the clean input elsewhere.
"""

from __future__ import annotations

import logging

import torch

from .base import Attack, register_attack


def _pyautoattack():
    try:
        import pyautoattack
    except ImportError as e:  # pragma: no cover - it is a hard dependency
        from ..errors import QrobenchError

        raise QrobenchError("AutoAttack's attacks need the package pyautoattack: pip install pyautoattack") from e
    return pyautoattack


def _quiet_logger() -> logging.Logger:
    log = logging.getLogger("qrobench.autoattack")
    log.setLevel(logging.WARNING)
    return log


class _AutoAttackPart(Attack):
    norms = ("Linf", "L2")

    def _torch_seed(self, generator):
        # pyautoattack seeds torch's global RNG itself from `seed`; derive it from the batch's
        # generator so that every batch differs but the run stays repeatable.
        if generator is None:
            return self.seed
        return int(torch.randint(0, 2**31 - 1, (1,), generator=generator, device=generator.device))


@register_attack("apgd-ce")
class APGDCE(_AutoAttackPart):
    """``apgd-ce``: APGD on the cross-entropy loss (Croce & Hein, ICML 2020, arXiv 2003.01690).

    Settings: ``pyautoattack.APGDAttack``, L∞ or L2, CE loss, 100 iterations, 1 restart,
    ρ = 0.75 (the step-size halving threshold), eot_iter 1. Returns x_adv: the adversarial
    example where found, else the clean input.

    Example::

        atk = create_attack("apgd-ce", model, eps=8/255, device="cuda")
        x_adv = atk(x, y, generator=torch.Generator().manual_seed(0))
    """

    n_iter, n_restarts, rho, eot_iter = 100, 1, 0.75, 1

    def settings(self):
        return {**super().settings(), "implementation": "pyautoattack.APGDAttack", "loss": "ce",
                "n_iter": self.n_iter, "n_restarts": self.n_restarts, "rho": self.rho,
                "eot_iter": self.eot_iter}

    def perturb(self, x, y, generator=None):
        from pyautoattack.autopgd_base import APGDAttack

        atk = APGDAttack(self.model, n_iter=self.n_iter, n_restarts=self.n_restarts, eps=self.eps,
                         norm=self.norm, loss="ce", rho=self.rho, eot_iter=self.eot_iter,
                         seed=self._torch_seed(generator), device=x.device, logger=_quiet_logger())
        return atk.perturb(x.contiguous(), y).detach()


@register_attack("apgd-t")
class APGDT(_AutoAttackPart):
    """``apgd-t``: targeted APGD, targeted DLR loss (Croce & Hein, ICML 2020, arXiv 2003.01690).

    Settings: ``pyautoattack.APGDAttack_targeted``, L∞ or L2, 100 iterations, 1 restart per
    target, the 9 most likely other classes (n_target_classes = 9) tried as targets in turn.
    Returns x_adv: the adversarial example where found, else the clean input.

    Example::

        atk = create_attack("apgd-t", model, eps=8/255, device="cuda")
        x_adv = atk(x, y, generator=torch.Generator().manual_seed(0))
    """

    n_iter, n_restarts, n_target_classes = 100, 1, 9

    def settings(self):
        return {**super().settings(), "implementation": "pyautoattack.APGDAttack_targeted",
                "loss": "dlr-targeted", "n_iter": self.n_iter, "n_restarts": self.n_restarts,
                "n_target_classes": self.n_target_classes}

    def perturb(self, x, y, generator=None):
        from pyautoattack.autopgd_base import APGDAttack_targeted

        atk = APGDAttack_targeted(self.model, n_iter=self.n_iter, n_restarts=self.n_restarts,
                                  eps=self.eps, norm=self.norm, n_target_classes=self.n_target_classes,
                                  seed=self._torch_seed(generator), device=x.device,
                                  logger=_quiet_logger())
        return atk.perturb(x.contiguous(), y).detach()


@register_attack("fab-t")
class FABT(_AutoAttackPart):
    """``fab-t``: targeted FAB (Croce & Hein, ICML 2020, arXiv 1907.02044).

    "Minimally distorted Adversarial Examples with a Fast Adaptive Boundary Attack": it seeks
    the smallest perturbation that crosses the decision boundary. Settings:
    ``pyautoattack.FABAttack_PT``, L∞ or L2, targeted, 100 iterations, 1 restart, 9 target
    classes. Returns x_adv: the example where one within ε was found, else the clean input.

    Example::

        atk = create_attack("fab-t", model, eps=8/255, device="cuda")
        x_adv = atk(x, y, generator=torch.Generator().manual_seed(0))
    """

    n_iter, n_restarts, n_target_classes = 100, 1, 9

    def settings(self):
        return {**super().settings(), "implementation": "pyautoattack.FABAttack_PT",
                "targeted": True, "n_iter": self.n_iter, "n_restarts": self.n_restarts,
                "n_target_classes": self.n_target_classes}

    def perturb(self, x, y, generator=None):
        from pyautoattack.fab_pt import FABAttack_PT

        atk = FABAttack_PT(self.model, norm=self.norm, n_restarts=self.n_restarts, n_iter=self.n_iter,
                           eps=self.eps, seed=self._torch_seed(generator), targeted=True,
                           n_target_classes=self.n_target_classes, device=x.device)
        return atk.perturb(x.contiguous(), y).detach()


class _AutoAttackCascade(_AutoAttackPart):
    version = "standard"

    def settings(self):
        parts = (["apgd-ce", "apgd-t", "fab-t", "square"] if self.version == "standard"
                 else ["apgd-ce", "apgd-dlr"])
        extra = {"eot_iter": 20} if self.version == "rand" else {"square_queries": 5000}
        return {**super().settings(), "implementation": "pyautoattack.AutoAttack",
                "version": self.version, "attacks": parts, **extra}

    def perturb(self, x, y, generator=None):
        aa = _pyautoattack().AutoAttack(self.model, eps=self.eps, norm=self.norm,
                                        version=self.version, device=x.device,
                                        seed=self._torch_seed(generator))
        aa.logger = _quiet_logger()
        aa.verbose = False
        x_adv, _ = aa.run_standard_evaluation(x.contiguous(), y, batch_size=len(x))
        return x_adv.detach()


@register_attack("aa")
class AutoAttackStandard(_AutoAttackCascade):
    """``aa``: standard AutoAttack (Croce & Hein, ICML 2020, arXiv 2003.01690).

    Settings: ``pyautoattack.AutoAttack``, version "standard", L∞ or L2: the cascade APGD-CE →
    APGD-T (9 targets) → FAB-T (9 targets) → Square (5,000 queries), each run on the points
    the earlier ones left robust (one ``run_standard_evaluation`` over the batch). Its number
    is the cascade's, unlike the engine's per-attack numbers (docs/protocol.md §6.3).
    Returns x_adv: the adversarial example where found, else the clean input.

    Example::

        atk = create_attack("aa", model, eps=8/255, device="cuda")
        x_adv = atk(x, y, generator=torch.Generator().manual_seed(0))
    """

    version = "standard"


@register_attack("aa-rand")
class AutoAttackRand(_AutoAttackCascade):
    """``aa-rand``: AutoAttack for randomised models (Croce & Hein, ICML 2020, arXiv 2003.01690).

    AutoAttack's rand version: APGD-CE and APGD-DLR, 100 iterations, 1 restart, each gradient
    averaged over 20 EOT iterations (fresh model noise per pass), L∞ or L2. With ``eot-pgd20``
    it is one of the EOT attacks that clear the ``no-eot`` flag (docs/protocol.md §6.4).

    On a randomised model both parts run on every point (``APGDAttack.perturb(best_loss=True)``)
    and each returns its highest-loss iterate; per point the attack returns the part's example
    that more of 20 fresh noise draws misclassify (ties: APGD-CE's). pyautoattack's own
    ``run_standard_evaluation(version="rand")`` instead decides "broken" from one noise draw
    (its clean check, the cascade after APGD-CE, APGD's first misclassified iterate), which
    left points standing that its own parts break (§6.4: 39.9 % against 35.7 % on
    ``enres20-fp``'s first 200 points). On a deterministic model one draw is exact, and the
    official cascade runs unchanged.

    Example::

        atk = create_attack("aa-rand", model, eps=8/255, device="cuda")
        x_adv = atk(x, y, generator=torch.Generator().manual_seed(0))
    """

    version = "rand"
    n_iter, n_restarts, rho, eot_iter, selection_draws = 100, 1, 0.75, 20, 20

    def settings(self):
        if not self.randomised:
            return super().settings()
        return {**Attack.settings(self),  # not the cascade's: no pyautoattack.AutoAttack runs here
                "implementation": "pyautoattack.APGDAttack(best_loss=True) per part, every point",
                "version": self.version, "attacks": ["apgd-ce", "apgd-dlr"], "eot_iter": self.eot_iter,
                "n_iter": self.n_iter, "n_restarts": self.n_restarts, "rho": self.rho,
                "returns": f"per point, the part's highest-loss iterate misclassified under more of "
                           f"{self.selection_draws} fresh noise draws (ties: apgd-ce)"}

    def perturb(self, x, y, generator=None):
        if not self.randomised:
            return super().perturb(x, y, generator)
        from pyautoattack.autopgd_base import APGDAttack

        seed = self._torch_seed(generator)
        x = x.contiguous()
        candidates, wrong = [], []
        for loss in ("ce", "dlr"):
            atk = APGDAttack(self.model, n_iter=self.n_iter, n_restarts=self.n_restarts, eps=self.eps,
                             norm=self.norm, loss=loss, rho=self.rho, eot_iter=self.eot_iter, seed=seed,
                             device=x.device, logger=_quiet_logger())
            torch.manual_seed(seed)  # its random start: perturb seeds it only when best_loss is False
            x_adv = atk.perturb(x, y, best_loss=True).detach()
            with torch.inference_mode():
                wrong.append(sum((self.model(x_adv).argmax(1) != y).int() for _ in range(self.selection_draws)))
            candidates.append(x_adv)
        use_dlr = (wrong[1] > wrong[0]).view(-1, *([1] * (x.dim() - 1)))
        return torch.where(use_dlr, candidates[1], candidates[0])
