"""Gradient-masking diagnostics: automatable warning signs that a robust accuracy is not real.

A model can look robust because its gradients are useless to the attacks, not because it
is robust (Athalye, Carlini & Wagner, "Obfuscated Gradients Give a False Sense of Security",
ICML 2018; Carlini et al., "On Evaluating Adversarial Robustness", arXiv 1902.06705;
AutoAttack's ``checks.py``). Each check below either passes, raises a flag with a one-line
reason, or does not apply (a needed attack or ε curve is missing). Thresholds are module
constants, stated in the README and docs/protocol.md §6.8.

Checks read from the result record alone (the leaderboard applies them to every row):
``not-robust``, ``fgsm-beats-pgd``, ``black-box-beats-white-box``, ``eot-gap``,
``eps-not-monotone``, ``zero-gradients``, ``stochastic``. Checks that need the model (a short
probe on the first points, :func:`probe`): ``large-eps-not-broken``, ``zero-gradients``
(measured directly), ``probability-output``.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass
from itertools import pairwise

import torch
import torch.nn as nn

from ..attacks.base import ce_loss, is_white_box
from ..attacks.gradient import input_gradient
from ..attacks.pgd import PGD
from ..models.noise import noise_seed
from ..protocol import eps_text, has_eot
from .evaluate import resolve_device
from .results import Result
from .seeding import ATTACK_GENERATOR, ATTACK_NOISE, SCORE_NOISE, batch_seed, generator, predict

# thresholds (percentage points where marked pp)
NOT_ROBUST_PCT = 1.0  # worst case below this: the model is not robust at this ε
GAP_PP = 1.0  # a gap must exceed this and two standard errors of the seed spread
ZERO_GRAD_FRACTION = 0.05  # of points with an all-zero or non-finite input gradient
EPS_TOLERANCE_PP = 1.0  # robust accuracy may not rise by more than this as ε grows
LARGE_EPS = 64 / 255  # an unbounded-in-practice budget: every point must break
LARGE_EPS_SUCCESS = 0.98  # required success rate there, on initially correct points
PROBE_POINTS = 100
PROBE_STEPS = 50


FLAG_HELP = {
    "not-robust": "worst-case robust accuracy below 1 % at this ε: the model is not robust (e.g. trained "
                  "without adversarial examples)",
    "fgsm-beats-pgd": "the one-step FGSM breaks more points than 20-step PGD: iterative gradients are "
                      "being misled (classic sign of masked gradients)",
    "black-box-beats-white-box": "a gradient-free or transfer attack breaks more points than every "
                                 "white-box attack: the model's own gradients are not informative",
    "eot-gap": "averaging gradients over noise draws (EOT) changes the accuracy by more than the seed spread: "
               "without EOT, the randomness hides the gradient",
    "eps-not-monotone": "robust accuracy rises with a larger ε on the ε curve: the attack is not finding "
                        "the adversarial examples that must exist",
    "large-eps-not-broken": "at ε = 64/255 a long PGD does not break nearly every point: the attack cannot "
                            "follow the gradient even where almost any image is reachable",
    "zero-gradients": "many points have an all-zero or non-finite input gradient (saturated or "
                      "non-differentiable parts)",
    "stochastic": "the model is random at test time: only EOT attacks (eot-pgd20, aa-rand) and several "
                  "seeds give trustworthy numbers",
    "probability-output": "the model returns probabilities, not logits: cross-entropy gradients vanish where "
                          "the softmax saturates",
}


@dataclass
class Finding:
    check: str
    status: str  # "pass" | "flag" | "n/a"
    reason: str

    def as_dict(self) -> dict:
        return asdict(self)


def _gap_threshold(r: Result, a: str, b: str) -> float:
    """pp a difference must exceed to count: GAP_PP, or two standard errors of the seed spread."""
    sa, sb = r.std.robust_acc.get(a, 0.0), r.std.robust_acc.get(b, 0.0)
    k = max(1, r.repeats)
    return max(GAP_PP, 200 * math.hypot(sa, sb) / math.sqrt(k))


def record_findings(r: Result, curve: dict[float, float] | None = None) -> list[Finding]:
    """The checks that need only the result record (and the model's ε curve: ε → worst case)."""
    acc = {a: 100 * v for a, v in r.robust_acc.items()}
    out = []
    worst = 100 * r.worst_case_acc
    if not acc:
        out.append(Finding("not-robust", "n/a", "no attack was run"))
    elif worst < NOT_ROBUST_PCT:
        out.append(Finding("not-robust", "flag", f"worst case {worst:.1f} % < {NOT_ROBUST_PCT:g} % at ε = "
                                                 f"{eps_text(r.eps)} (clean {100 * r.clean_acc:.1f} %)"))
    else:
        out.append(Finding("not-robust", "pass", f"worst case {worst:.1f} %"))

    cumulative = "a --cascade run: per-attack accuracies are cumulative, so attacks cannot be compared"
    if r.cascade:
        out.append(Finding("fgsm-beats-pgd", "n/a", cumulative))
    elif "fgsm" in acc and "pgd20" in acc:
        t = _gap_threshold(r, "fgsm", "pgd20")
        gap = acc["pgd20"] - acc["fgsm"]
        status = "flag" if gap > t else "pass"
        out.append(Finding("fgsm-beats-pgd", status, f"fgsm {acc['fgsm']:.1f} % vs pgd20 {acc['pgd20']:.1f} % "
                                                     f"(gap {gap:+.1f} pp, threshold {t:.1f} pp)"))
    else:
        out.append(Finding("fgsm-beats-pgd", "n/a", "needs fgsm and pgd20"))

    white = {a: v for a, v in acc.items() if is_white_box(a)}  # as each registered attack says
    black = {a: v for a, v in acc.items() if not is_white_box(a)}
    if r.cascade:
        out.append(Finding("black-box-beats-white-box", "n/a", cumulative))
    elif white and black:
        wb, bb = min(white, key=white.get), min(black, key=black.get)
        t = _gap_threshold(r, wb, bb)
        gap = white[wb] - black[bb]
        out.append(Finding("black-box-beats-white-box", "flag" if gap > t else "pass",
                           f"best black-box {bb} {black[bb]:.1f} % vs best white-box {wb} {white[wb]:.1f} % "
                           f"(gap {gap:+.1f} pp, threshold {t:.1f} pp)"))
    else:
        out.append(Finding("black-box-beats-white-box", "n/a", "needs a black-box and a white-box attack"))

    if r.cascade:
        out.append(Finding("eot-gap", "n/a", cumulative))
    elif r.stochastic and "eot-pgd20" in acc and "pgd20" in acc:
        t = _gap_threshold(r, "eot-pgd20", "pgd20")
        gap = acc["pgd20"] - acc["eot-pgd20"]
        out.append(Finding("eot-gap", "flag" if abs(gap) > t else "pass",
                           f"pgd20 {acc['pgd20']:.1f} % vs eot-pgd20 {acc['eot-pgd20']:.1f} % (gap {gap:+.1f} pp, "
                           f"threshold {t:.1f} pp)"))
    else:
        out.append(Finding("eot-gap", "n/a", "needs a randomised model with pgd20 and eot-pgd20"))

    if curve and len(curve) >= 2:
        pts = sorted(curve.items())
        rises = any(100 * (a2 - a1) > EPS_TOLERANCE_PP for (_, a1), (_, a2) in pairwise(pts))
        text = ", ".join(f"{eps_text(e)}: {100 * a:.1f} %" for e, a in pts)
        out.append(Finding("eps-not-monotone", "flag" if rises else "pass", f"worst case by ε: {text}"))
    else:
        out.append(Finding("eps-not-monotone", "n/a", "needs results at two or more ε"))

    zg = {a: f for a, f in r.zero_grad_frac.items() if f > ZERO_GRAD_FRACTION}
    out.append(Finding("zero-gradients", "flag" if zg else "pass",
                       ", ".join(f"{a}: {100 * f:.0f} % of points" for a, f in zg.items())
                       or "no attack met all-zero or non-finite input gradients"))

    if r.stochastic:
        eot = has_eot(r.attacks)
        out.append(Finding("stochastic", "flag", f"random at test time; EOT attack {'present' if eot else 'MISSING'},"
                                                 f" {r.repeats} seed(s)"))
    else:
        out.append(Finding("stochastic", "pass", "deterministic at test time"))
    return out


def probe(model: nn.Module, x: torch.Tensor, y: torch.Tensor, device="cpu", seed: int = 0,
          stochastic: bool = False) -> list[Finding]:
    """Checks that need the model: a long PGD at a large ε, the input gradients, the outputs."""
    model = model.to(device).eval()
    model.requires_grad_(False)
    x, y = x.to(device), y.to(device)
    out = []
    with torch.inference_mode(), noise_seed(model, batch_seed(seed, 0, 0, SCORE_NOISE), device):
        logits = model(x)
    probs = bool((logits >= 0).all() and torch.allclose(logits.sum(1), torch.ones(len(x), device=device), atol=1e-3))
    out.append(Finding("probability-output", "flag" if probs else "pass",
                       "outputs are non-negative and sum to 1" if probs else "outputs are logits"))

    with noise_seed(model, batch_seed(seed, 0, 0, ATTACK_NOISE), device):
        g, _ = input_gradient(model, x, y, ce_loss)
    flat = g.flatten(1)
    bad = float(((flat.abs().amax(1) == 0) | ~torch.isfinite(flat).all(1)).float().mean())
    out.append(Finding("zero-gradients", "flag" if bad > ZERO_GRAD_FRACTION else "pass",
                       f"{100 * bad:.0f} % of {len(x)} points have an all-zero or non-finite input gradient"))

    correct = predict(model, x, len(x), device, (seed, 0, 0)).to(device) == y
    if int(correct.sum()) == 0:
        out.append(Finding("large-eps-not-broken", "n/a", "no probe point is classified correctly"))
        return out
    xc, yc = x[correct], y[correct]
    atk = PGD(model, steps=PROBE_STEPS, step_size=LARGE_EPS / 10, random_start=True, loss="ce",
              eps=LARGE_EPS, device=device, eot_iter=10 if stochastic else 1)
    with noise_seed(model, batch_seed(seed, 1, 0, ATTACK_NOISE), device):
        x_adv = atk.perturb(xc, yc, generator=generator(device, seed, 1, 0, ATTACK_GENERATOR))
    with torch.inference_mode(), noise_seed(model, batch_seed(seed, 1, 0, SCORE_NOISE), device):
        success = float((model(x_adv).argmax(1) != yc).float().mean())
    out.append(Finding("large-eps-not-broken", "flag" if success < LARGE_EPS_SUCCESS else "pass",
                       f"PGD-{PROBE_STEPS} at ε = {eps_text(LARGE_EPS)} breaks {100 * success:.1f} % of "
                       f"{len(yc)} correct points (required {100 * LARGE_EPS_SUCCESS:.0f} %)"))
    return out


def combine(record: list[Finding], probed: list[Finding] | None) -> list[Finding]:
    """One finding per check: the probe's direct measurement replaces the record's, except that a
    flag from either source stands."""
    by_check: dict[str, Finding] = {f.check: f for f in record}
    for f in probed or []:
        old = by_check.get(f.check)
        if old is None or f.status == "flag" or old.status != "flag":
            by_check[f.check] = f
    return list(by_check.values())


def findings_of(r: Result, curve: dict[float, float] | None = None) -> list[Finding]:
    """The stored diagnosis of a result (``qrobench diagnose``), else the record-only checks."""
    if r.diagnostics and r.diagnostics.get("findings"):
        return [Finding(**f) for f in r.diagnostics["findings"]]
    return record_findings(r, curve)


def flags(findings: list[Finding]) -> list[str]:
    return [f.check for f in findings if f.status == "flag"]


def diagnose_result(result: Result, model, data, curve: dict | None = None, device="cpu",
                    command: str | None = None, probe_points: int = PROBE_POINTS) -> list[Finding]:
    """Diagnose ``result`` (in place: its ``diagnostics``) with a probe on ``model``.

    Library code, not the ``qrobench diagnose`` command's: ``qrobench submit`` diagnoses
    every entry with it, and neither command should import the other."""
    dev = resolve_device(device)
    x, y = data.x[:probe_points], data.y[:probe_points]
    findings = combine(record_findings(result, curve), probe(model, x, y, dev, result.seed, result.stochastic))
    result.diagnostics = {
        "findings": [f.as_dict() for f in findings],
        "flags": flags(findings),
        "probe": {"points": len(x), "attack": f"PGD-{PROBE_STEPS}, step ε/10, random start",
                  "eps": LARGE_EPS, "device": str(dev)},
        "command": command,
        "timestamp": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    return findings
