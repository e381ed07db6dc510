"""Gradient-masking diagnostics: automatable warning signs that a robust accuracy is not real.

A model can look robust because its gradients are useless to the attacks, not because it
is robust (Athalye, Carlini & Wagner, "Obfuscated Gradients Give a False Sense of Security",
ICML 2018; Carlini et al., "On Evaluating Adversarial Robustness", arXiv 1902.06705;
AutoAttack's ``checks.py``). Each check below either passes, raises a flag with a one-line
reason, or does not apply (a needed attack or ε curve is missing). Thresholds are module
constants, stated in the README and docs/protocol.md §6.8.

Checks read from the result record alone (the leaderboard applies them to every row):
``not-robust``, ``fgsm-beats-pgd``, ``black-box-beats-white-box``, ``square-beats-white-box``
(per-point outcomes), ``eot-gap``, ``noisy-early-stop``, ``eps-not-monotone``, ``zero-gradients``, ``stochastic`` (as
the record says). Checks that need the model (a short probe on the first points, :func:`probe`):
``stochastic`` (two passes compared), ``forward-calls-backward``, ``probability-output``,
``zero-gradients`` (measured directly), ``tied-logits``, ``unstable-predictions`` (Pintor et al., NeurIPS 2022),
``large-eps-not-broken``; and, with the record's per-point outcomes, ``random-beats-attacks``
(:func:`random_ball_finding`).
"""

from __future__ import annotations

import math
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from itertools import pairwise

import torch
import torch.nn as nn

from ..attacks.base import ce_loss, is_white_box, margin_loss
from ..attacks.gradient import input_gradient, random_start, zero_grad_fraction
from ..attacks.pgd import PGD, RETURNS_TEXT
from ..models.noise import noise_seed
from ..protocol import eps_text, has_eot, threat_model
from .evaluate import resolve_device
from .hardware import cpu_info
from .outcomes import decode_mask
from .results import SHARED_SCORE_DRAW, Result
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
# stochastic: two passes of the same input (fresh noise seeds) differ by more than this, relative
# to the largest logit. A deterministic forward repeats exactly on the CPU, and GPU kernels that
# sum in another order differ by ~1e-6 relative; test-time noise (dropout, EnResNet's Feynman-Kac
# noise) moves logits by 1e-2 or more, so 1e-4 separates the two by two orders either way.
STOCHASTIC_TOL = 1e-4
# zero-gradients, probe: AutoAttack's checks.py warns on ANY point with a zero gradient, because
# a gradient attack cannot move such a point at all; the probe measures the CE input gradient
# at the clean-correct probe points (the ones attacks start from) and flags any. (The record's
# check counts every attack iterate and keeps ZERO_GRAD_FRACTION: saturated softmax at
# far-adversarial iterates is not masking.)
ZERO_GRAD_PROBE_FRACTION = 0.0
# unstable-predictions (Pintor et al., "Indicators of Attack Failure", NeurIPS 2022): the loss
# jumps under small random noise by more than the gradient can explain. Uniform noise of
# UNSTABLE_RADIUS (one 8-bit grey level, ε/8 at 8/255) per pixel, UNSTABLE_DRAWS draws, margin
# loss (it does not saturate on confident points, unlike CE). To first order no perturbation
# of L∞ size r changes the loss by more than the gradient-sign step of size r gains
# (|g·u| ≤ r‖g‖₁), so a point whose mean random change exceeds UNSTABLE_RATIO × that gain is
# not described by its gradient: a step function (hard rounding, zero gain) or a gradient
# that points elsewhere. Changes below UNSTABLE_FLOOR (logits) are float rounding.
UNSTABLE_RADIUS = 1 / 255
UNSTABLE_DRAWS = 8
UNSTABLE_RATIO = 1.0
UNSTABLE_FLOOR = 1e-4
# flag when more than this fraction of clean-correct probe points is unstable: the same
# tolerance as the record's zero-gradients, for points near a ReLU kink where curvature alone
# can beat the first-order gain at one grey level
UNSTABLE_FRACTION = 0.05
# square-beats-white-box (AutoAttack's checks.py): Square, a gradient-free attack, breaks
# more than 0.2 % of the points beyond what every white-box attack together breaks
SQUARE_GAP_PP = 0.2
# random-beats-attacks (Athalye et al., ICML 2018): RANDOM_SAMPLES uniform draws from the ε-ball
# around each clean-correct probe point that the battery left robust; any draw that is
# misclassified is a point the attacks missed although chance finds it. The threshold is zero
# points: a random draw is the weakest attack there is, so one such point already shows the
# battery failing, and the check costs RANDOM_SAMPLES forward passes per probe point.
RANDOM_SAMPLES = 64
RANDOM_BEATS_MAX = 0
# incomplete optimisation (Pintor et al. 2022): PGD with 5x the steps and 5 restarts, on the probe
# points the battery left robust; more than this fraction of them broken (and at least 2) flags
LONG_STEPS, LONG_RESTARTS = 100, 5
INCOMPLETE_FRACTION = 0.05
# a deployed model attacked through its twin (BPDA): the twin must agree with it on clean points and
# the adversarial examples that fool the twin must mostly fool the deployed model
TWIN_AGREEMENT = 0.95
TWIN_TRANSFER = 0.5
TWIN_TRANSFER_MIN_POINTS = 10
# tied-logits: a model whose logits are quantized (an int8 runtime's requantized output layer) gives
# several classes exactly the same largest logit; argmax takes the lowest class index, so whether
# such a point counts as correct is decided by the class order, and one rounding step on another
# CPU's int8 kernels turns it. Flag when more than this fraction of the probe points have the true
# class among tied largest logits: the accuracy is then uncertain by more than a percentage point
# that no seed spread or interval shows.
TIE_FRACTION = 0.01


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
    "noisy-early-stop": "a randomised model whose gradient attacks stopped each point at the first iterate "
                        "misclassified under one noise draw: the scoring pass's fresh draw often classifies that "
                        "boundary point correctly, so those attacks' robust accuracy is too high",
    "separate-score-draws": "a randomised model whose attacks were each scored under a noise draw of their own "
                            "(records without score_draw): a point must survive one more independent draw per attack, so "
                            "the worst case falls with the battery's size, not only with the attacks' strength",
    "large-eps-not-broken": "at L∞ ε = 64/255 a long PGD does not break nearly every point: the attack cannot "
                            "follow the gradient even where almost any image is reachable",
    "zero-gradients": "all-zero or non-finite input gradients (saturated or non-differentiable parts): on more "
                      "than 5 % of an attack's points, or at any clean-correct probe point",
    "stochastic": "the model is random at test time (as its card says, or two passes of the same input "
                  "differ): only EOT attacks (eot-pgd20, aa-rand) and several seeds give trustworthy numbers",
    "probability-output": "the model returns probabilities, not logits: cross-entropy gradients vanish where "
                          "the softmax saturates",
    "forward-calls-backward": "the model's forward pass computes gradients itself (a dynamic defence): "
                              "the attacks' gradients are not those of the function they attack",
    "unstable-predictions": "small random noise (one grey level) moves the loss more than a gradient step of "
                            "the same size on many points: the loss is a step function or its gradient is "
                            "uninformative (e.g. hard rounding without a straight-through estimator)",
    "square-beats-white-box": "the gradient-free Square attack breaks more than 0.2 % of points that every "
                              "white-box attack left robust: the gradients are misleading",
    "random-beats-attacks": "random points in the ε-ball misclassify a point that every attack left robust: "
                            "the attacks are failing",
    "incomplete-optimisation": "PGD with 5× the steps and 5 restarts breaks more than 5 % of the probe points "
                               "the battery left robust: the battery's attacks had not converged",
    "tied-logits": "more than 1 % of the probe points have the true class tied with another class for the largest "
                   "(quantized) logit: argmax's lowest-index rule decides them, so the accuracy moves with the tie "
                   "rule and with another CPU's int8 rounding",
    "twin-mismatch": "a deployed model attacked through its twin (BPDA): the twin agrees with it on fewer than "
                     "95 % of clean points, or fewer than half of the adversarial examples that fool the twin "
                     "fool the deployed model: the gradients come from a different function",
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
    # --cascade-from attacks count earlier attacks' breaks too: their own accuracy is unknown
    continued = [a for a in acc if r.cumulative_over(a)]
    acc = {a: v for a, v in acc.items() if a not in continued}
    left_out = (f" ({', '.join(continued)}: cumulative over earlier attacks, left out)"
                if continued and not r.cascade else "")

    def cumulative_or(needs: list[str], text: str) -> str:
        hit = [a for a in needs if a in continued]
        return f"{', '.join(hit)}: cumulative over earlier attacks (--cascade-from), so not comparable" if hit else text

    if r.cascade:
        out.append(Finding("fgsm-beats-pgd", "n/a", cumulative))
    elif "fgsm" in acc and "pgd20" in acc:
        t = _gap_threshold(r, "fgsm", "pgd20")
        gap = acc["pgd20"] - acc["fgsm"]
        status = "flag" if gap > t else "pass"
        out.append(Finding("fgsm-beats-pgd", status, f"fgsm {acc['fgsm']:.1f} % vs pgd20 {acc['pgd20']:.1f} % "
                                                     f"(gap {gap:+.1f} pp, threshold {t:.1f} pp)"))
    else:
        out.append(Finding("fgsm-beats-pgd", "n/a", cumulative_or(["fgsm", "pgd20"], "needs fgsm and pgd20")))

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
                           f"(gap {gap:+.1f} pp, threshold {t:.1f} pp){left_out}"))
    else:
        out.append(Finding("black-box-beats-white-box", "n/a",
                           "needs a black-box and a white-box attack" + left_out))

    out.append(_square_finding(r))

    if r.cascade:
        out.append(Finding("eot-gap", "n/a", cumulative))
    elif r.stochastic and "eot-pgd20" in acc and "pgd20" in acc:
        t = _gap_threshold(r, "eot-pgd20", "pgd20")
        gap = acc["pgd20"] - acc["eot-pgd20"]
        out.append(Finding("eot-gap", "flag" if abs(gap) > t else "pass",
                           f"pgd20 {acc['pgd20']:.1f} % vs eot-pgd20 {acc['eot-pgd20']:.1f} % (gap {gap:+.1f} pp, "
                           f"threshold {t:.1f} pp)"))
    else:
        out.append(Finding("eot-gap", "n/a", cumulative_or(["pgd20", "eot-pgd20"],
                                                           "needs a randomised model with pgd20 and eot-pgd20")))

    out.append(_early_stop_finding(r))
    out.append(_score_draw_finding(r))

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

    out.append(_twin_finding(r))

    if r.stochastic:
        eot = has_eot(r.attacks)
        out.append(Finding("stochastic", "flag", f"random at test time (record); EOT attack "
                                                 f"{'present' if eot else 'MISSING'}, {r.repeats} seed(s)"))
    else:
        out.append(Finding("stochastic", "pass", "deterministic at test time (record; the probe tests the model)"))
    return out


def _early_stop_finding(r: Result) -> Finding:
    """noisy-early-stop: a randomised model attacked by a gradient attack that stopped each point
    at its first iterate misclassified under one noise draw (the default there until commit 6c80ebd)."""
    name = "noisy-early-stop"
    if not r.stochastic:
        return Finding(name, "n/a", "deterministic model: a misclassified iterate stays misclassified")
    early = [a for a, st in r.attacks.items() if (st or {}).get("returns") == RETURNS_TEXT["first-success"]]
    if early:
        return Finding(name, "flag", f"{', '.join(early)} stopped each point at its first iterate misclassified "
                                     "under one noise draw; their robust accuracy is an overestimate (re-run: "
                                     "randomised models now get the last iterate)")
    return Finding(name, "pass", "no gradient attack stopped on one noise draw")


def _score_draw_finding(r: Result) -> Finding:
    """separate-score-draws: a randomised model's ε-ball record whose columns were scored under
    independent noise draws, so its worst case ANDs one more draw per attack (protocol §6.4)."""
    name = "separate-score-draws"
    if not r.stochastic:
        return Finding(name, "n/a", "deterministic model: one forward pass is exact")
    if not threat_model(r.threat_model).is_norm_ball:
        return Finding(name, "n/a", f"a {r.threat_model} record: its headline is no worst case over attacks")
    if r.score_draw == SHARED_SCORE_DRAW:
        return Finding(name, "pass", "every attack scored under the clean pass's noise draw")
    return Finding(name, "flag", f"clean and {len(r.attacks)} attack(s) each scored under a noise draw of their "
                                 "own; the worst case is too low by the draws' disagreement (re-run: every attack is now "
                                 "scored under the clean pass's draw)")


def _twin_finding(r: Result) -> Finding:
    d = r.deployment or {}
    if "agreement" not in d:
        return Finding("twin-mismatch", "n/a", "not a deployed model attacked through a twin")
    agree = d["agreement"].get("rate")
    low = {a: t for a, t in (d.get("transfer") or {}).items()
           if t.get("twin_fooled", 0) >= TWIN_TRANSFER_MIN_POINTS and (t.get("rate") or 0) < TWIN_TRANSFER}
    bad = (agree is not None and agree < TWIN_AGREEMENT) or bool(low)
    transfer = ", ".join(f"{a} {100 * t['rate']:.0f} % of {t['twin_fooled']}" for a, t in
                         (d.get("transfer") or {}).items() if t.get("rate") is not None) or "none"
    return Finding("twin-mismatch", "flag" if bad else "pass",
                   f"twin agrees on {100 * (agree or 0):.1f} % of clean points (required {100 * TWIN_AGREEMENT:.0f} %); "
                   f"twin→deployed transfer: {transfer} (required {100 * TWIN_TRANSFER:.0f} % where the twin was "
                   f"fooled on ≥ {TWIN_TRANSFER_MIN_POINTS} points)")


def _contains_square(settings: dict) -> bool:
    return "square" in (settings or {}).get("attacks", [])


def _square_finding(r: Result) -> Finding:
    """square-beats-white-box: per seed, the points every white-box attack left robust that
    Square breaks, as pp of n, averaged over seeds."""
    name = "square-beats-white-box"
    # white-box attacks whose own cascade does not run Square (``aa`` does)
    white = [a for a in r.attacks if is_white_box(a) and a != "square" and not _contains_square(r.attacks[a])]
    if "square" not in r.attacks or not white:
        return Finding(name, "n/a", "needs square and a white-box attack without Square inside")
    if r.cascade and any(list(r.attacks).index(a) > list(r.attacks).index("square") for a in white):
        return Finding(name, "n/a", "a --cascade run with a white-box attack after square: its outcomes "
                                    "already count Square's breaks")
    # exact only if no outcome used here counts a break of an attack outside the white-box set:
    # then "every white-box attack left robust, square breaks" is the same with cumulative outcomes
    outside = sorted({b for a in [*white, "square"] for b in r.cumulative_over(a) if b not in white})
    if outside:
        return Finding(name, "n/a", f"outcomes here count the breaks of {', '.join(outside)} too (--cascade / "
                                    "--cascade-from), so Square's own breaks beyond the white-box attacks are unknown")
    seeds = [s for s in r.per_seed if s.outcomes and "clean" in s.outcomes
             and all(a in s.outcomes for a in [*white, "square"])]
    if not seeds or len(seeds) != len(r.per_seed):
        return Finding(name, "n/a", "needs per-point outcomes of square and the white-box attacks")
    gaps = []
    for s in seeds:
        n = r.n
        robust = decode_mask(s.outcomes["clean"], n).copy()
        for a in white:
            robust &= decode_mask(s.outcomes[a], n)
        only_square = robust & ~decode_mask(s.outcomes["square"], n)
        gaps.append(100 * int(only_square.sum()) / n)
    gap = sum(gaps) / len(gaps)
    return Finding(name, "flag" if gap > SQUARE_GAP_PP else "pass",
                   f"square breaks {gap:.1f} % of points that {', '.join(white)} left robust "
                   f"(threshold {SQUARE_GAP_PP:g} pp)")


@contextmanager
def _seeded(model: nn.Module, seed: int, device):
    """The model's randomness drawn from ``seed``: its noise modules and the global RNG (dropout
    and other ``torch.rand*`` calls), restored afterwards."""
    dev = torch.device(device)
    devices = [dev.index if dev.index is not None else torch.cuda.current_device()] if dev.type == "cuda" else []
    with torch.random.fork_rng(devices=devices), noise_seed(model, seed, device):
        torch.manual_seed(seed)
        yield


@contextmanager
def _autograd_calls():
    """Counts, while active, calls of ``torch.autograd.grad``, ``torch.autograd.backward`` and
    ``Tensor.backward``, and backward passes through graphs built meanwhile (their saved
    tensors are unpacked), which also catches code holding its own reference to ``grad``."""
    calls = {"calls": 0, "unpacked": 0}
    originals = torch.autograd.grad, torch.autograd.backward, torch.Tensor.backward

    def counted(f):
        def call(*args, **kwargs):
            calls["calls"] += 1
            return f(*args, **kwargs)
        return call

    def unpack(t):
        calls["unpacked"] += 1
        return t

    torch.autograd.grad, torch.autograd.backward, torch.Tensor.backward = (counted(f) for f in originals)
    try:
        with torch.autograd.graph.saved_tensors_hooks(lambda t: t, unpack):
            yield calls
    finally:
        torch.autograd.grad, torch.autograd.backward, torch.Tensor.backward = originals


def _stochastic_finding(model, x, seed, device, record_says: bool) -> tuple[Finding, bool]:
    with torch.inference_mode():
        with _seeded(model, batch_seed(seed, 0, 0, SCORE_NOISE), device):
            a = model(x)
        with _seeded(model, batch_seed(seed, 0, 1, SCORE_NOISE), device):
            b = model(x)
    diff = float((a - b).abs().amax()) / max(1.0, float(a.abs().amax()))
    changed = int((a.argmax(1) != b.argmax(1)).sum())
    if diff > STOCHASTIC_TOL:
        said = "random too" if record_says else "deterministic: measured without EOT, on one seed"
        return Finding("stochastic", "flag", f"two passes of the same {len(x)} points differ (max |Δlogit| "
                                             f"{diff:.2g} of the largest logit, {changed} prediction(s) change); "
                                             f"the record says {said}"), True
    return Finding("stochastic", "pass", f"two passes of the same {len(x)} points agree (max |Δlogit| "
                                         f"{diff:.1g} of the largest logit, threshold {STOCHASTIC_TOL:g})"), False


def _dynamic_finding(model, x) -> Finding:
    name = "forward-calls-backward"
    try:
        with torch.enable_grad(), _autograd_calls() as calls:
            model(x)
    except RuntimeError as e:  # e.g. a model that refuses saved-tensor hooks
        return Finding(name, "n/a", f"the forward pass failed under the autograd counters: {e}")
    if calls["calls"] or calls["unpacked"]:
        return Finding(name, "flag", f"one forward pass of {len(x)} points called autograd.grad or backward "
                                     f"{calls['calls']} time(s) and ran a backward pass through "
                                     f"{calls['unpacked']} saved tensor(s)")
    return Finding(name, "pass", "the forward pass runs no backward or autograd.grad")


def _unstable_finding(model, x, y, seed, device) -> Finding:
    s = batch_seed(seed, 0, 0, ATTACK_NOISE)  # one noise draw for every pass: only the input varies

    def loss_at(xp):
        with torch.inference_mode(), _seeded(model, s, device):
            return margin_loss(model(xp), y)

    with _seeded(model, s, device):
        g, _ = input_gradient(model, x, y, margin_loss)
    base = loss_at(x)
    gain = (loss_at((x + UNSTABLE_RADIUS * torch.sign(g)).clamp(0.0, 1.0)) - base).clamp_min(0.0)
    gen = generator(device, seed, 0, 0, ATTACK_GENERATOR)
    change = torch.zeros_like(base)
    for _ in range(UNSTABLE_DRAWS):
        change += (loss_at(random_start(x, UNSTABLE_RADIUS, "Linf", gen)) - base).abs() / UNSTABLE_DRAWS
    unstable = (change > UNSTABLE_FLOOR) & (change > UNSTABLE_RATIO * gain)
    frac = float(unstable.float().mean())
    ratio = float(torch.where(gain > 0, change / gain.clamp_min(1e-30), torch.inf).median())
    return Finding("unstable-predictions", "flag" if frac > UNSTABLE_FRACTION else "pass",
                   f"{100 * frac:.0f} % of {len(x)} clean-correct points: uniform noise of "
                   f"{eps_text(UNSTABLE_RADIUS)} ({UNSTABLE_DRAWS} draws) moves the margin loss more than "
                   f"{UNSTABLE_RATIO:g}× a gradient-sign step of that size gains (median ratio {ratio:.2g}; "
                   f"threshold {100 * UNSTABLE_FRACTION:.0f} % of points)")


def _tie_finding(logits: torch.Tensor, y: torch.Tensor) -> Finding:
    top = logits.max(1, keepdim=True).values
    at_top = logits == top
    ties = at_top.sum(1) > 1
    label_ties = ties & at_top.gather(1, y[:, None]).squeeze(1)
    frac = float(label_ties.float().mean())
    won = int((label_ties & (logits.argmax(1) == y)).sum())
    return Finding("tied-logits", "flag" if frac > TIE_FRACTION else "pass",
                   f"{int(label_ties.sum())} of {len(y)} probe points ({100 * frac:.0f} %) have the true class tied "
                   f"for the largest logit ({won} of them counted correct by argmax's lowest-index rule); "
                   f"{int(ties.sum())} have a tie at the top; {logits.unique().numel()} distinct logit values "
                   f"(flag above {100 * TIE_FRACTION:g} %)")


def probe(model: nn.Module, x: torch.Tensor, y: torch.Tensor, device="cpu", seed: int = 0,
          stochastic: bool = False) -> list[Finding]:
    """Checks that need the model: randomness, gradients computed in the forward pass, the
    outputs, the input gradients, the loss under small noise, a long PGD at a large ε.
    ``stochastic``: whether the record says the model is random at test time."""
    model = model.to(device).eval()
    model.requires_grad_(False)
    x, y = x.to(device), y.to(device)
    out = []
    found, measured_random = _stochastic_finding(model, x, seed, device, stochastic)
    out.append(found)
    out.append(_dynamic_finding(model, x[:8]))
    with torch.inference_mode(), noise_seed(model, batch_seed(seed, 0, 0, SCORE_NOISE), device):
        logits = model(x)
    probs = bool((logits >= 0).all() and torch.allclose(logits.sum(1), torch.ones(len(x), device=device), atol=1e-3))
    out.append(Finding("probability-output", "flag" if probs else "pass",
                       "outputs are non-negative and sum to 1" if probs else "outputs are logits"))

    out.append(_tie_finding(logits, y))

    correct = predict(model, x, len(x), device, (seed, 0, 0)).to(device) == y
    if int(correct.sum()) == 0:
        for check in ("zero-gradients", "unstable-predictions", "large-eps-not-broken"):
            out.append(Finding(check, "n/a", "no probe point is classified correctly"))
        return out
    xc, yc = x[correct], y[correct]

    with _seeded(model, batch_seed(seed, 0, 0, ATTACK_NOISE), device):
        g, _ = input_gradient(model, xc, yc, ce_loss)
    bad = zero_grad_fraction(g)
    out.append(Finding("zero-gradients", "flag" if bad > ZERO_GRAD_PROBE_FRACTION else "pass",
                       f"{100 * bad:.0f} % of {len(xc)} clean-correct points have an all-zero or non-finite "
                       f"CE input gradient (flag above {100 * ZERO_GRAD_PROBE_FRACTION:g} %)"))
    out.append(_unstable_finding(model, xc, yc, seed, device))

    random = stochastic or measured_random  # EOT, and the last iterate (§6.4)
    atk = PGD(model, steps=PROBE_STEPS, step_size=LARGE_EPS / 10, random_start=True, loss="ce",
              eps=LARGE_EPS, device=device, eot_iter=10 if random else 1, randomised=random)
    with noise_seed(model, batch_seed(seed, 1, 0, ATTACK_NOISE), device):
        x_adv = atk.perturb(xc, yc, generator=generator(device, seed, 1, 0, ATTACK_GENERATOR))
    with torch.inference_mode(), noise_seed(model, batch_seed(seed, 1, 0, SCORE_NOISE), device):
        success = float((model(x_adv).argmax(1) != yc).float().mean())
    out.append(Finding("large-eps-not-broken", "flag" if success < LARGE_EPS_SUCCESS else "pass",
                       f"L∞ PGD-{PROBE_STEPS} at ε = {eps_text(LARGE_EPS)} breaks {100 * success:.1f} % of "
                       f"{len(yc)} correct points (required {100 * LARGE_EPS_SUCCESS:.0f} %)"))
    return out


def random_ball_finding(model: nn.Module, x: torch.Tensor, y: torch.Tensor, r: Result, device="cpu",
                        samples: int = RANDOM_SAMPLES) -> Finding:
    """random-beats-attacks: ``samples`` uniform draws from the result's ε-ball around each of
    the first points (``x``, ``y``: the result's first test points) that the battery left
    robust (first seed's per-point outcomes); any misclassified draw flags."""
    name = "random-beats-attacks"
    if r.stochastic:
        return Finding(name, "n/a", "a randomised model: a random draw can be misclassified by the model's own noise")
    if r.first_index != 0:
        return Finding(name, "n/a", f"the result starts at test point {r.first_index}, the probe at 0")
    outcomes = r.per_seed[0].outcomes if r.per_seed else None
    if not outcomes or "clean" not in outcomes or not r.attacks or not all(a in outcomes for a in r.attacks):
        return Finding(name, "n/a", "needs the per-point outcomes of every attack")
    robust = decode_mask(outcomes["clean"], r.n)
    for a in r.attacks:
        robust &= decode_mask(outcomes[a], r.n)
    k = min(len(x), r.n)
    idx = torch.from_numpy(robust[:k].nonzero()[0])
    if len(idx) == 0:
        return Finding(name, "n/a", f"no robust point among the first {k}")
    model = model.to(device).eval()
    xr, yr = x[idx].to(device), y[idx].to(device)
    gen = generator(device, r.seed, 0, 0, ATTACK_GENERATOR)
    broken = torch.zeros(len(idx), dtype=torch.bool, device=device)
    per_pass = 8  # draws per forward pass
    with torch.inference_mode():
        for i in range(0, samples, per_pass):
            m = min(per_pass, samples - i)
            xs = random_start(xr.repeat(m, 1, 1, 1), r.eps, r.norm, gen)
            with noise_seed(model, batch_seed(r.seed, 0, i, SCORE_NOISE), device):
                wrong = model(xs).argmax(1) != yr.repeat(m)
            broken |= wrong.view(m, len(idx)).any(0)
    count = int(broken.sum())
    text = (f"{samples} uniform draws from the {r.norm} ε-ball (ε = {eps_text(r.eps)}) break {count} of the "
            f"{len(idx)} points among the first {k} that every attack left robust (flag above {RANDOM_BEATS_MAX})")
    return Finding(name, "flag" if count > RANDOM_BEATS_MAX else "pass", text)


def _robust_probe_points(r: Result, k: int):
    """Indices among the first ``k`` points that every attack of ``r`` left robust (first seed)."""
    outcomes = r.per_seed[0].outcomes if r.per_seed else None
    if not outcomes or "clean" not in outcomes or not r.attacks or not all(a in outcomes for a in r.attacks):
        return None
    robust = decode_mask(outcomes["clean"], r.n)
    for a in r.attacks:
        robust &= decode_mask(outcomes[a], r.n)
    return torch.from_numpy(robust[:min(k, r.n)].nonzero()[0])


def incomplete_finding(model: nn.Module, x: torch.Tensor, y: torch.Tensor, r: Result, device="cpu") -> Finding:
    """incomplete-optimisation: a longer PGD with restarts (margin loss, step 2.5·ε/steps) on the
    first points the battery left robust."""
    name = "incomplete-optimisation"
    if r.stochastic:
        return Finding(name, "n/a", "a randomised model: the seed spread would swamp the comparison")
    if r.first_index != 0 or r.norm not in ("Linf", "L2"):
        return Finding(name, "n/a", "needs a result on the first test points in an ε-ball")
    idx = _robust_probe_points(r, len(x))
    if idx is None:
        return Finding(name, "n/a", "needs the per-point outcomes of every attack")
    if len(idx) == 0:
        return Finding(name, "n/a", f"no robust point among the first {min(len(x), r.n)}")
    model = model.to(device).eval()
    xr, yr = x[idx].to(device), y[idx].to(device)
    broken = torch.zeros(len(idx), dtype=torch.bool, device=device)
    atk = PGD(model, steps=LONG_STEPS, step_size=2.5 * r.eps / LONG_STEPS, random_start=True, loss="margin",
              eps=r.eps, norm=r.norm, device=device)
    for k in range(LONG_RESTARTS):
        alive = ~broken
        if not alive.any():
            break
        x_adv = atk.perturb(xr[alive], yr[alive], generator=generator(device, r.seed, 2, k, ATTACK_GENERATOR))
        with torch.inference_mode():
            wrong = model(x_adv).argmax(1) != yr[alive]
        broken[alive.nonzero().flatten()[wrong]] = True
    count = int(broken.sum())
    bad = count >= 2 and count > INCOMPLETE_FRACTION * len(idx)
    return Finding(name, "flag" if bad else "pass",
                   f"PGD-{LONG_STEPS} (margin loss) with {LONG_RESTARTS} restarts breaks {count} of the {len(idx)} "
                   f"points among the first {min(len(x), r.n)} that every attack left robust (flag above "
                   f"{100 * INCOMPLETE_FRACTION:g} % and at least 2)")


def combine(record: list[Finding], probed: list[Finding] | None) -> list[Finding]:
    """One finding per check: the probe's direct measurement replaces the record's, except that a
    flag from either source stands."""
    by_check: dict[str, Finding] = {f.check: f for f in record}
    for f in probed or []:
        old = by_check.get(f.check)
        if old is not None and f.status == "flag" and old.status == "flag" and old.reason != f.reason:
            by_check[f.check] = Finding(f.check, "flag", f"{f.reason}; record: {old.reason}")
        elif old is None or f.status == "flag" or old.status != "flag":
            by_check[f.check] = f
    return list(by_check.values())


def findings_of(r: Result, curve: dict[float, float] | None = None) -> list[Finding]:
    """The stored diagnosis of a result (``qrobench diagnose``), else the record-only checks; a
    record check added after the diagnosis was stored is run on the record and appended."""
    fresh = record_findings(r, curve)
    if r.diagnostics and r.diagnostics.get("findings"):
        stored = [Finding(**f) for f in r.diagnostics["findings"]]
        have = {f.check for f in stored}
        return stored + [f for f in fresh if f.check not in have]
    return fresh


def flags(findings: list[Finding]) -> list[str]:
    return [f.check for f in findings if f.status == "flag"]


def diagnose_result(result: Result, model, data, curve: dict | None = None, device="cpu",
                    command: str | None = None, probe_points: int = PROBE_POINTS) -> list[Finding]:
    """Diagnose ``result`` (in place: its ``diagnostics``) with a probe on ``model``.

    Library code, not the ``qrobench diagnose`` command's: ``qrobench submit`` diagnoses
    every entry with it, and neither command should import the other."""
    dev = resolve_device(device)
    x, y = data.x[:probe_points], data.y[:probe_points]
    probed = probe(model, x, y, dev, result.seed, result.stochastic)
    probed.append(random_ball_finding(model, x, y, result, dev))
    probed.append(incomplete_finding(model, x, y, result, dev))
    findings = combine(record_findings(result, curve), probed)
    result.diagnostics = {
        "findings": [f.as_dict() for f in findings],
        "flags": flags(findings),
        "probe": {"points": len(x), "attack": f"PGD-{PROBE_STEPS}, step ε/10, random start",
                  "eps": LARGE_EPS, "device": str(dev), "cpu": cpu_info(), "unstable_radius": UNSTABLE_RADIUS,
                  "unstable_draws": UNSTABLE_DRAWS, "random_samples": RANDOM_SAMPLES,
                  "incomplete": f"PGD-{LONG_STEPS} margin, {LONG_RESTARTS} restarts"},
        "command": command,
        "timestamp": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    return findings
