"""Layer 2 of the studies: the seed papers' claims tested against the numbers of data.py.

Every verdict is computed from result data by a stated rule, never typed: it changes when a
re-run changes a number. Each finding names the files behind it and the rule that decided it;
"not tested" says what is missing. Nothing here formats a table (render.py does).
"""

from __future__ import annotations

import math
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from ...engine.results import Result
from ...protocol import precision_for_bits
from ...quant.weight_records import read_weights
from ..stats import ALPHA, paired_test
from .data import (
    CORRUPTIONS_DIR,
    NATURAL_SUFFIX,
    WEIGHTS_DIR,
    at_chance,
    bit_error_table,
    bit_flip_table,
    by_bits,
    corruption_scores,
    corruption_table,
    float_point,
    fullset_table,
    l2_table,
    read_sweeps,
    sweep_table,
    threat_results,
    threat_summary,
)

SPARSE_PCT = 20.0  # a quantized model whose convs are at least this sparse counts as "sparse"


@dataclass
class Finding:
    """One claim and its verdict, with the evidence lines and the rule kept beside it so that a
    reader can re-derive the verdict from the numbers without reading code."""

    claim: str
    source: str  # the paper
    verdict: str  # holds | does not hold | mixed | not tested
    evidence: list[str] = field(default_factory=list)
    rule: str = ""

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass
class Studies:
    """Everything the studies sections show, computed once per leaderboard build so that the
    Markdown, HTML, JSON and the plots cannot disagree."""

    sweeps: dict[str, list[Result]]  # source model -> its points (float first)
    weights: dict[str, dict]  # model -> results/weights file
    table: pd.DataFrame  # one row per sweep point
    findings: list[Finding]
    fullset: pd.DataFrame = field(default_factory=pd.DataFrame)  # one row per full-test-set run
    bit_errors: pd.DataFrame = field(default_factory=pd.DataFrame)  # one row per bit-error record
    bit_flip: pd.DataFrame = field(default_factory=pd.DataFrame)  # one row per bit-flip attack record
    l2: pd.DataFrame = field(default_factory=pd.DataFrame)  # one row per L2 record
    corruptions: pd.DataFrame = field(default_factory=pd.DataFrame)  # one row per corruptions record
    threats: pd.DataFrame = field(default_factory=pd.DataFrame)  # one row per zoo model, one column per threat


def _sensitivity_finding(sweeps) -> Finding:
    claim = ("Adversarially trained networks lose more accuracy to quantization than naturally trained "
             "ones (compared as the relative drop in clean accuracy, 1 − acc_q / acc_float, uniform "
             "post-training quantization at each bit-width)")
    f = Finding(claim, "Song, Ranjan & Li 2021 (arXiv 2110.12308)", "not tested",
                rule="per bit-width, the AT drop counts as larger (smaller) when it exceeds (falls short of) the "
                     "natural drop by more than 2 standard errors of the difference; bit-widths where both models "
                     "are at chance are skipped (the normalised drop would then only reflect the float accuracy); "
                     "holds when larger at more bit-widths than smaller, does not hold when smaller at more, mixed "
                     "when as often, not established when never")
    pairs = [(s, s + NATURAL_SUFFIX) for s in sweeps if s + NATURAL_SUFFIX in sweeps]
    if not pairs:
        f.evidence.append("needs sweeps of a float AT model and its '-natural' twin (qrobench sweep M and "
                          "M-natural)")
        return f
    larger = smaller = compared = 0
    for at, nat in pairs:
        a_base, n_base = float_point(sweeps[at]), float_point(sweeps[nat])
        if a_base is None or n_base is None:
            f.evidence.append(f"{at}/{nat}: a float point is missing")
            continue
        a_pts, n_pts = by_bits(sweeps[at], "uniform"), by_bits(sweeps[nat], "uniform")
        for b in sorted(set(a_pts) & set(n_pts)):
            if at_chance(a_pts[b]) and at_chance(n_pts[b]):
                f.evidence.append(f"{b} bit: both {at} and {nat} collapse to chance (clean "
                                  f"{100 * a_pts[b].clean_acc:.1f} / {100 * n_pts[b].clean_acc:.1f} %): "
                                  "uninformative, not counted")
                continue
            compared += 1
            ra, rn = _rel_drop(a_base, a_pts[b]), _rel_drop(n_base, n_pts[b])
            se = math.hypot(_rel_se(a_base, a_pts[b]), _rel_se(n_base, n_pts[b]))
            mark = "≈"
            if ra - rn > 2 * se:
                larger, mark = larger + 1, ">"
            elif rn - ra > 2 * se:
                smaller, mark = smaller + 1, "<"
            f.evidence.append(f"{b} bit: {at} loses {100 * ra:.1f} % of its clean accuracy "
                              f"({100 * a_base.clean_acc:.1f} → {100 * a_pts[b].clean_acc:.1f}), {nat} "
                              f"{100 * rn:.1f} % ({100 * n_base.clean_acc:.1f} → {100 * n_pts[b].clean_acc:.1f}) "
                              f"[{mark}, 2 SE = {200 * se:.1f} pp]; {at} keeps "
                              f"{_kept(a_base, a_pts[b])} of its worst-case robust accuracy")
    if larger or smaller:
        f.verdict = "holds" if larger > smaller else "does not hold" if smaller > larger else "mixed"
    elif compared:
        f.verdict = "not established"  # every bit-width within 2 standard errors
    elif pairs:
        f.evidence.append("no bit-width was measured in both sweeps with at least one model above chance")
    return f


def _rel_drop(base: Result, q: Result) -> float:
    return 1 - q.clean_acc / base.clean_acc if base.clean_acc else math.nan


def _rel_se(base: Result, q: Result) -> float:
    """Standard error of 1 − q/b by the delta method (independent binomial proportions)."""
    b, p = base.clean_acc, q.clean_acc
    if b <= 0:
        return math.nan
    vb, vp = b * (1 - b) / base.n, p * (1 - p) / q.n
    return math.sqrt(vp / b**2 + p**2 * vb / b**4)


def _kept(base: Result, q: Result) -> str:
    if base.worst_case_acc <= 0:
        return "none (it has none)"
    return f"{100 * q.worst_case_acc / base.worst_case_acc:.0f} % ({100 * base.worst_case_acc:.1f} → " \
           f"{100 * q.worst_case_acc:.1f})"


def _lgmp_finding(sweeps) -> Finding:
    claim = ("Choosing per-layer bit-widths by the layers' Lipschitz constants loses less robustness than "
             "uniform quantization at the same average bits (qrobench-LGMP vs uniform, both post-training)")
    f = Finding(claim, "Song, Ranjan & Li 2021 (arXiv 2110.12308); LGMP is qrobench's own construction",
                "not tested",
                rule="paired test (McNemar / sign-flip) of the worst-case outcomes at each average-bits budget "
                     f"where the two methods differ, {int(100 * ALPHA)} % level; holds when LGMP is significantly "
                     "better at more budgets than worse, does not hold when worse at more, else mixed "
                     "(no significant difference anywhere: not established)")
    better = worse = compared = 0
    for source, points in sweeps.items():
        base = float_point(points)
        if base is None or base.worst_case_acc <= 0:
            continue  # a natural model has no robustness to lose
        u, g = by_bits(points, "uniform"), by_bits(points, "lgmp")
        for b in sorted(set(u) & set(g)):
            if u[b].sweep["layer_bits"] == g[b].sweep["layer_bits"]:
                continue  # the same model: nothing to compare
            if not (u[b].per_seed and g[b].per_seed and u[b].per_seed[0].outcomes and g[b].per_seed[0].outcomes):
                continue
            mu, mg = u[b].worst_case_masks()[0], g[b].worst_case_masks()[0]
            p = paired_test(mg.astype(float), mu.astype(float))
            compared += 1
            diff = 100 * (mg.mean() - mu.mean())
            sig = p < ALPHA
            better += sig and diff > 0
            worse += sig and diff < 0
            f.evidence.append(f"{source}, {b} bits: LGMP ({g[b].sweep['avg_bits']:.2f} bits) worst case "
                              f"{100 * mg.mean():.1f} % vs uniform {100 * mu.mean():.1f} % ({diff:+.1f} pp, p = {p:.2g}); "
                              f"clean {100 * g[b].clean_acc:.1f} % vs {100 * u[b].clean_acc:.1f} %")
    if not compared:
        f.evidence.append("needs a sweep of an adversarially trained float model with both methods "
                          "(qrobench sweep M --method uniform,lgmp)")
    else:
        f.verdict = _paired_verdict(better, worse)
    return f


def _paired_verdict(better: int, worse: int) -> str:
    """The verdict from counts of significant wins and losses of the claimed-better method."""
    if better != worse:
        return "holds" if better > worse else "does not hold"
    return "mixed" if better else "not established"


def _lgmp_finetuned_finding(zoo: dict[str, Result], cards: dict) -> Finding:
    claim = ("Choosing per-layer bit-widths by the layers' Lipschitz constants loses less robustness than "
             "uniform quantization at the same average bits, both fine-tuned with the same recipe "
             "(<arch>-mixed-ft vs <arch>-<b>bit)")
    f = Finding(claim, "Song, Ranjan & Li 2021 (arXiv 2110.12308); LGMP is qrobench's own construction",
                "not tested",
                rule="per like-for-like pair (same recipe, epochs, images and float initialisation), paired test "
                     "(McNemar) of the worst case over the attacks both results share, "
                     f"{int(100 * ALPHA)} % level; holds when LGMP is significantly better in more pairs than worse, "
                     "does not hold when worse in more, else mixed (no significant difference anywhere: not "
                     "established)")
    better = worse = compared = 0
    for name in sorted(cards):
        if not name.endswith("-mixed-ft"):
            continue
        plan = ((cards[name].training or {}).get("plan") or {})
        budget = plan.get("avg_bits_budget")
        if budget is None or float(budget) != int(budget):
            f.evidence.append(f"{name}: its card has no whole-number bit budget to pair with a uniform model")
            continue
        uniform = f"{name[: -len('-mixed-ft')]}-{precision_for_bits(int(budget))}"
        if uniform not in cards:
            f.evidence.append(f"{name}: no uniform {int(budget)}-bit twin {uniform} in the zoo")
            continue
        like = _schedule_key(cards[name]) == _schedule_key(cards[uniform]) and \
            (cards[name].training or {}).get("init_from") == (cards[uniform].training or {}).get("init_from")
        sched = f"{name}: {_epochs_and_images(cards[name])}; {uniform}: {_epochs_and_images(cards[uniform])}"
        if name not in zoo or uniform not in zoo:
            f.evidence.append(f"{name} / {uniform}: a zoo result is missing ({sched})")
            continue
        a, b = zoo[name], zoo[uniform]
        shared = _shared_scores(a, b)
        if shared is None:
            f.evidence.append(f"{name} / {uniform}: no per-point outcomes on the same points and attacks")
            continue
        common, sa, sb = shared
        p = paired_test(sa, sb)
        diff = 100 * (sa.mean() - sb.mean())
        tag = "" if like else " — NOT like for like (different schedules), not counted"
        f.evidence.append(f"{name} ({plan.get('avg_bits', float('nan')):.2f} bits) worst case over "
                          f"{','.join(common)}: {100 * sa.mean():.1f} % vs {uniform} {100 * sb.mean():.1f} % "
                          f"({diff:+.1f} pp, p = {p:.2g}, n = {a.n}); clean {100 * a.clean_acc:.1f} % vs "
                          f"{100 * b.clean_acc:.1f} %; {sched}{tag}")
        post = name[: -len("-ft")]
        if post in zoo and zoo[post].has_outcomes and zoo[post].n == a.n and all(x in zoo[post].attacks for x in common):
            sp = zoo[post].point_scores(common)
            f.evidence.append(f"the same plan post-training ({post}): worst case {100 * sp.mean():.1f} %, clean "
                              f"{100 * zoo[post].clean_acc:.1f} % — fine-tuning adds "
                              f"{100 * (sa.mean() - sp.mean()):+.1f} pp (p = {paired_test(sa, sp):.2g})")
        if like:
            compared += 1
            better += p < ALPHA and diff > 0
            worse += p < ALPHA and diff < 0
    if compared:
        f.verdict = _paired_verdict(better, worse)
    elif not f.evidence:
        f.evidence.append("needs a fine-tuned plan and its uniform twin on the same recipe (qrobench train "
                          "res20-mixed-ft --avg-bits 4 --init-from res20-fp, as res20-4bit was trained)")
    return f


def _epochs_and_images(card) -> str:
    t = (card.training or {}) if card is not None else {}
    cmd = t.get("command") or ""
    ep = re.search(r"--epochs (\d+)", cmd)
    recipe = (t.get("recipe") or {})
    epochs = int(ep.group(1)) if ep else recipe.get("epochs")
    return f"{epochs} epochs on {t.get('train_images', '?')} images" if epochs else "schedule unknown"


def _schedule_key(card) -> tuple:
    """What must match for a trade-off model and its control to be like for like."""
    t = (card.training or {}) if card is not None else {}
    return ((t.get("recipe") or {}).get("name"), _epochs_and_images(card), t.get("init_from") is not None)


def _tradeoff_findings(zoo: dict[str, Result], weights: dict[str, dict], cards: dict) -> list[Finding]:
    clean_f = Finding("The trade-off loss (8·CE(adversarial) + 1·CE(clean)) preserves clean accuracy, compared "
                      "with the plain adversarial loss on the same quantized model", "Li, Wang & Xin 2022 "
                      "(arXiv 2008.13305)", "not tested",
                      rule="per pair trained on the same schedule: holds when the trade-off model's clean "
                           "accuracy is not significantly lower (paired test on the clean outcomes, "
                           f"{int(100 * ALPHA)} %); pairs on different schedules are listed, not counted")
    chan_f = Finding("The trade-off loss raises channel sparsity (input channels whose weights are all zero)",
                     "Li, Wang & Xin 2022 (arXiv 2008.13305)", "not tested",
                     rule="per like-for-like pair: holds when the trade-off model has more zero channels than "
                          "its control (results/weights)")
    held_c = failed_c = held_s = failed_s = 0
    for name in sorted(cards):
        if not name.endswith("-tradeoff"):
            continue
        control = name[: -len("-tradeoff")]
        if control not in cards:
            continue
        like = _schedule_key(cards[name]) == _schedule_key(cards[control])
        sched = f"{name}: {_epochs_and_images(cards[name])}; {control}: {_epochs_and_images(cards[control])}"
        tag = "" if like else " — NOT like for like (different schedules), not counted"
        if name in zoo and control in zoo:
            a, b = 100 * zoo[name].clean_acc, 100 * zoo[control].clean_acc
            p = _clean_p(zoo[name], zoo[control])
            ptxt = f", p = {p:.2g}" if p is not None else ""
            clean_f.evidence.append(f"{name} clean {a:.1f} % vs {control} {b:.1f} % ({a - b:+.1f} pp{ptxt}, "
                                    f"n = {zoo[name].n} / {zoo[control].n}){_shared_worst(zoo[name], zoo[control])}; "
                                    f"{sched}{tag}")
            if like:
                lower = a < b and (p is None or p < ALPHA)
                failed_c += lower
                held_c += not lower
        if name in weights and control in weights:
            za, zb = (weights[m]["totals"]["zero_channels"] for m in (name, control))
            tot = weights[name]["totals"]["total_channels"]
            sa, sb = (100 * weights[m]["totals"]["sparsity"] for m in (name, control))
            chan_f.evidence.append(f"{name}: {za}/{tot} zero channels, sparsity {sa:.1f} %; {control}: {zb}/{tot}, "
                                   f"sparsity {sb:.1f} %; {sched}{tag}")
            if like:
                held_s += za > zb
                failed_s += za <= zb
    for f, held, failed in ((clean_f, held_c, failed_c), (chan_f, held_s, failed_s)):
        if held or failed:
            f.verdict = "holds" if held and not failed else "does not hold" if failed and not held else "mixed"
            if f.verdict != "holds":
                f.evidence.append("the schedule is far shorter than the paper's 200 epochs: the verdict is for "
                                  "this schedule, not the paper's")
        elif not f.evidence:
            f.evidence.append("needs a zoo pair M-tradeoff / M measured, with cards")
        else:
            f.evidence.append("no pair was trained on the same schedule as its control")
    return [clean_f, chan_f]


def _shared_scores(a: Result, b: Result) -> tuple[list[str], np.ndarray, np.ndarray] | None:
    """The attacks both results measured and each one's per-point worst case over them, for a
    paired comparison; None when they lack outcomes or were not run on the same points."""
    common = [x for x in a.attacks if x in b.attacks]
    if not (common and a.has_outcomes and b.has_outcomes and a.n == b.n and a.first_index == b.first_index):
        return None
    return common, a.point_scores(common), b.point_scores(common)


def _shared_worst(a: Result, b: Result) -> str:
    """What the clean accuracy cost or bought in robustness: the worst case over the attacks
    both results measured, with the paired test, for context beside the clean comparison."""
    shared = _shared_scores(a, b)
    if shared is None:
        return ""
    common, sa, sb = shared
    return (f"; worst case over {','.join(common)} {100 * sa.mean():.1f} % vs {100 * sb.mean():.1f} % "
            f"({100 * (sa.mean() - sb.mean()):+.1f} pp, p = {paired_test(sa, sb):.2g})")


def _clean_p(a: Result | None, b: Result | None) -> float | None:
    try:
        ma, mb = np.mean(np.stack(a.masks("clean")), 0), np.mean(np.stack(b.masks("clean")), 0)
    except Exception:
        return None
    if a.first_index != b.first_index or len(ma) != len(mb):
        return None
    return paired_test(ma, mb)


def _sparse_finding(weights: dict[str, dict], cards: dict) -> Finding:
    f = Finding("4-bit and ternary quantization make an adversarially trained network sparse, but the "
                "sparsity is unstructured (no whole channels vanish)", "Li, Wang & Xin 2022 (arXiv 2008.13305)",
                "not tested",
                rule=f"holds when every 4-bit/ternary adversarially trained zoo model has sparsity ≥ {SPARSE_PCT:g} % "
                     "and its channel sparsity is below 1 %")
    ok = bad = 0
    for name, w in sorted(weights.items()):
        card = cards.get(name)
        if card is None or card.precision not in ("4bit", "tnn") or name.endswith(NATURAL_SUFFIX):
            continue
        t = w["totals"]
        sparse, unstructured = 100 * t["sparsity"] >= SPARSE_PCT, 100 * t["channel_sparsity"] < 1
        near = max(layer["max_channel_zero_frac"] for layer in w["layers"])
        f.evidence.append(f"{name}: sparsity {100 * t['sparsity']:.1f} %, channel sparsity "
                          f"{100 * t['channel_sparsity']:.2f} % ({t['zero_channels']}/{t['total_channels']}); "
                          f"the emptiest input channel is {100 * near:.0f} % zeros")
        ok += sparse and unstructured
        bad += not (sparse and unstructured)
    if ok or bad:
        f.verdict = "holds" if not bad else "does not hold" if not ok else "mixed"
    else:
        f.evidence.append("needs results/weights for the 4-bit and ternary zoo models (qrobench weights)")
    return f


DEPLOYED_FORMATS = ("torch-ao", "onnx")  # integer runtimes, attacked through a twin (BPDA)


def _deployed_finding(zoo: dict[str, Result], cards: dict) -> Finding:
    f = Finding("A quantized network deployed on integer kernels (torch.ao int8, ONNX Runtime int8) keeps the "
                "robustness of the float network it was quantized from", "qrobench (issue #25)", "not tested",
                rule="per deployed zoo entry, paired test (McNemar) of its worst case over the attacks both results "
                     f"share against its float source (the card's init_from), {int(100 * ALPHA)} % level, on the "
                     "same points; the deployed model decides every outcome, gradients come from its twin (BPDA), "
                     "so the twin's clean agreement and the twin→deployed transfer rate are shown beside it; holds "
                     "when no entry is significantly less robust than its source, does not hold when every entry "
                     "is, else mixed")
    kept = lost = 0
    for name in sorted(cards):
        card = cards[name]
        if card.format not in DEPLOYED_FORMATS:
            continue
        source = (card.training or {}).get("init_from")
        if name not in zoo or source not in zoo:
            f.evidence.append(f"{name}: a zoo result is missing (it, or its source {source})")
            continue
        a, b = zoo[name], zoo[source]
        shared = _shared_scores(a, b)
        if shared is None:
            f.evidence.append(f"{name} / {source}: no per-point outcomes on the same points and attacks")
            continue
        common, sa, sb = shared
        p = paired_test(sa, sb)
        diff = 100 * (sa.mean() - sb.mean())
        d = a.deployment or {}
        agree = d.get("agreement") or {}
        transfer = {k: v.get("rate") for k, v in (d.get("transfer") or {}).items() if v.get("rate") is not None}
        runtime = (d.get("execution") or {}).get("runtime", card.format)
        tr = ", ".join(f"{k} {100 * v:.0f} %" for k, v in transfer.items()) or "none measured"
        f.evidence.append(
            f"{name} ({runtime}, {a.bits:.0f}-bit, {a.compression:.1f}× smaller) worst case over {','.join(common)}: "
            f"{100 * sa.mean():.1f} % vs {source} {100 * sb.mean():.1f} % ({diff:+.1f} pp, p = {p:.2g}, n = {a.n}); "
            f"clean {100 * a.clean_acc:.1f} % vs {100 * b.clean_acc:.1f} %; twin agrees on "
            f"{100 * agree.get('rate', float('nan')):.1f} % of clean points (max |Δ logit| "
            f"{agree.get('max_abs_logit_diff', float('nan')):.3f}); twin→deployed transfer: {tr}")
        worse = p < ALPHA and diff < 0
        lost += worse
        kept += not worse
    for name in sorted(cards):  # context: a toolkit's QAT model beside qrobench's own at the same budget
        card = cards[name]
        twin = f"{name.split('-')[0]}-{card.precision}"
        if card.format != "brevitas" or twin not in zoo or name not in zoo or twin not in cards:
            continue
        shared = _shared_scores(zoo[name], zoo[twin])
        if shared is None:
            continue
        common, sa, sb = shared
        f.evidence.append(f"context, not counted: {name} (Brevitas QAT) worst case over {','.join(common)} "
                          f"{100 * sa.mean():.1f} % vs {twin} (qrobench BinaryRelax, same budget) {100 * sb.mean():.1f} % "
                          f"({100 * (sa.mean() - sb.mean()):+.1f} pp, p = {paired_test(sa, sb):.2g}); clean "
                          f"{100 * zoo[name].clean_acc:.1f} % vs {100 * zoo[twin].clean_acc:.1f} %")
    if kept or lost:
        f.verdict = "holds" if not lost else "does not hold" if not kept else "mixed"
    elif not f.evidence:
        f.evidence.append("needs deployed zoo entries and their float sources measured (qrobench deploy "
                          "res20-int8-torchao --from res20-fp --toolkit torch-ao, then qrobench run)")
    return f


def _bit_flip_finding(t: pd.DataFrame) -> Finding:
    f = Finding("Fewer bits make a network harder to break by flipping weight bits: a lower bit width needs more "
                "flips of the Bit-Flip Attack", "He et al. CVPR 2020; Rakin, He & Fan ICCV 2019", "not tested",
                rule="over every pair of bit-flip records with different bits (a record that reached the cap counts "
                     "as cap + 1 flips), a pair agrees when the lower-bit model needed more flips and disagrees when "
                     "it needed fewer; holds when no pair disagrees and at least one agrees, does not hold when more "
                     "disagree than agree, else mixed")
    if not len(t):
        f.evidence.append("needs bit-flip records (qrobench run --model M --threat-model bit-flip) of models of "
                          "different bit widths")
        return f
    need = {}
    for _, r in t.sort_values("bits", ascending=False).iterrows():
        flips = r["flips"] if r["flips"] is not None and not pd.isna(r["flips"]) else None
        need[r["model"]] = (float(r["bits"]), (int(r["cap"]) + 1) if flips is None else int(flips))
        shown = f"> {int(r['cap'])}" if flips is None else str(int(flips))
        f.evidence.append(f"{r['model']} ({r['bits']:.2f} bits, {r['stored']}): {shown} flips to bring "
                          f"{int(r['n'])} test points from {r['clean_pct']:.1f} % to ≤ {r['target_pct']:.0f} %")
    agree = disagree = 0
    items = list(need.values())
    for i, (bi, fi) in enumerate(items):
        for bj, fj in items[i + 1:]:
            if bi == bj or fi == fj:
                continue
            lower_needs_more = (fj > fi) if bj < bi else (fi > fj)
            agree += lower_needs_more
            disagree += not lower_needs_more
    if agree or disagree:
        f.verdict = "holds" if not disagree else "does not hold" if disagree > agree else "mixed"
        f.evidence.append(f"{agree} pair(s) agree, {disagree} disagree")
    return f


ROBUSTMQ = "Xiao et al. 2023, RobustMQ (arXiv 2308.02350)"
UNIFORM_PRECISIONS = ("fp", "8bit", "4bit", "tnn", "bnn")  # one bit width per layer: mixed plans are left out


def _corruption_records(root: Path) -> dict[str, Result]:
    return {r.model: r for _, r in threat_results(root, CORRUPTIONS_DIR, "corruptions")}


def _paired_corruptions(a: Result, b: Result) -> tuple[np.ndarray, np.ndarray] | None:
    """Both models' per-point corruption scores when they saw the same corrupted points."""
    if not (a.has_outcomes and b.has_outcomes and a.n == b.n and a.first_index == b.first_index
            and a.data_source == b.data_source and list(a.attacks) == list(b.attacks)):
        return None
    return corruption_scores(a), corruption_scores(b)


def _direction(sa: np.ndarray, sb: np.ndarray) -> tuple[int, float, float]:
    """+1 / -1 when ``sa`` is significantly above / below ``sb`` (paired test), else 0."""
    p, diff = paired_test(sa, sb), 100 * float(sa.mean() - sb.mean())
    return (0 if p >= ALPHA else 1 if diff > 0 else -1), diff, p


def _two_part_verdict(adv: list[int], corr: list[int], adv_sign: int, corr_sign: int) -> tuple[str, str]:
    """Each part by the paired-count rule (counting only significant pairs), then the claim: holds when
    both parts hold, does not hold when either part does not hold, else mixed."""
    parts = [_paired_verdict(sum(d == s for d in ds), sum(d == -s for d in ds))
             for ds, s in ((adv, adv_sign), (corr, corr_sign))]
    if all(v == "holds" for v in parts):
        verdict = "holds"
    elif "does not hold" in parts:
        verdict = "does not hold"
    elif all(v == "not established" for v in parts):
        verdict = "not established"
    else:
        verdict = "mixed"
    return verdict, f"adversarial part: {parts[0]}; corruption part: {parts[1]}"


def _robustmq_quantization_finding(zoo: dict[str, Result], corr: dict[str, Result], cards: dict,
                                   sweeps: dict | None = None, csweeps: dict | None = None) -> Finding:
    sweeps, csweeps = sweeps or {}, csweeps or {}
    f = Finding("Quantization makes a network more robust to adversarial attacks and less "
                "robust to common corruptions", ROBUSTMQ, "not tested",
                rule="per quantized zoo model beside the float model it was made from (its card's init_from), and per "
                     "post-training sweep point beside its sweep's float point (collapsed points, at chance, left out), two "
                     f"paired tests at the {int(100 * ALPHA)} % level on the same points: the L∞ worst case over the "
                     "attacks both results share, and the per-point corruptions score (the fraction of corruption × "
                     "severity columns a point survives, on the same corrupted set); each part holds when more pairs "
                     "differ significantly in the claimed direction than against it; the claim holds when both parts "
                     "hold, does not hold when either does not hold, else mixed (not established: nothing significant)")
    adv, cor = [], []
    for name in sorted(cards):
        card = cards[name]
        source = (card.training or {}).get("init_from")
        if card.precision == "fp" or source is None or name.endswith(NATURAL_SUFFIX):
            continue
        if name not in zoo or source not in zoo:
            f.evidence.append(f"{name}: a zoo result is missing (it, or its source {source})")
            continue
        shared = _shared_scores(zoo[name], zoo[source])
        pc = _paired_corruptions(corr[name], corr[source]) if name in corr and source in corr else None
        if shared is None or pc is None:
            f.evidence.append(f"{name} / {source}: " + ("no L∞ per-point outcomes on the same points" if shared is None
                                                        else "no corruptions records on the same corrupted points"))
            continue
        common, sa, sb = shared
        da, diff_a, p_a = _direction(sa, sb)
        dc, diff_c, p_c = _direction(*pc)
        adv.append(da)
        cor.append(dc)
        f.evidence.append(f"{name} ({card.precision}) vs {source}: L∞ worst over {','.join(common)} {100 * sa.mean():.1f} % vs "
                          f"{100 * sb.mean():.1f} % ({diff_a:+.1f} pp, p = {p_a:.2g}); corruptions mean "
                          f"{100 * pc[0].mean():.1f} % vs {100 * pc[1].mean():.1f} % ({diff_c:+.1f} pp, p = {p_c:.2g})")
    for source, points in _sweep_points(sweeps, csweeps).items():
        base = points.get(("float", 32))
        for key, (lq, cq) in sorted(points.items()):
            if key == ("float", 32) or base is None:
                continue
            pair = _both_tests((lq, cq), base)
            if pair is None:
                continue
            (da, diff_a, p_a), (dc, diff_c, p_c) = pair
            adv.append(da)
            cor.append(dc)
            f.evidence.append(f"sweep {source} {key[0]} {key[1]}-bit vs float (post-training, n = {lq.n}): L∞ worst "
                              f"{diff_a:+.1f} pp (p = {p_a:.2g}); corruptions mean {diff_c:+.1f} pp (p = {p_c:.2g})")
    if adv:
        f.verdict, parts = _two_part_verdict(adv, cor, +1, -1)
        f.evidence.append(parts)
    elif not f.evidence:
        f.evidence.append("needs quantized zoo models and their float sources with L∞ and corruptions records "
                          "(qrobench run --model M --threat-model corruptions), or sweeps under both threat models "
                          "(qrobench sweep M, and qrobench sweep M --threat-model corruptions)")
    return f


def _sweep_points(sweeps: dict, csweeps: dict) -> dict[str, dict[tuple, tuple[Result, Result]]]:
    """Per swept source, its points measured under both threat models: (method, bits) -> (L∞, corruptions).
    Collapsed points (clean accuracy indistinguishable from guessing, §8.4) are left out: what
    they "keep" under either threat is only what their near-constant answer happens to fit."""
    out = {}
    for source, points in csweeps.items():
        linf = {(r.sweep["method"], r.sweep["bits_budget"]): r for r in sweeps.get(source, [])}
        both = {}
        for c in points:
            key = (c.sweep["method"], c.sweep["bits_budget"])
            if key in linf and not at_chance(linf[key]) and not at_chance(c):
                both[key] = (linf[key], c)
        if both:
            out[source] = both
    return out


def _both_tests(a: tuple[Result, Result], b: tuple[Result, Result]):
    """The two paired tests of ``a`` against ``b``, each an (L∞, corruptions) pair of results: None
    when they were not measured on the same points."""
    shared, pc = _shared_scores(a[0], b[0]), _paired_corruptions(a[1], b[1])
    if shared is None or pc is None:
        return None
    return _direction(shared[1], shared[2]), _direction(*pc)


def _robustmq_bits_finding(zoo: dict[str, Result], corr: dict[str, Result], cards: dict,
                           sweeps: dict | None = None, csweeps: dict | None = None) -> Finding:
    sweeps, csweeps = sweeps or {}, csweeps or {}
    f = Finding("More bits make a quantized network less robust to adversarial attacks and more robust to common "
                "corruptions (bit width moves the two in opposite directions)", ROBUSTMQ, "not tested",
                rule="within each family (one architecture, one float source: the source and the uniform-precision "
                     "models made from it; mixed plans, trade-off losses and natural training left out), every pair of "
                     "different bit widths is compared by the two paired tests of the previous finding; a pair agrees "
                     "with a part when the higher-bit model is significantly less (adversarial) or more (corruptions) "
                     "robust, and disagrees when significantly the other way; the same for every pair of uniform points "
                     "(and the float point) of a sweep measured under both threat models; verdict as in the previous "
                     "finding")
    families: dict[str, list[str]] = {}
    for name in sorted(cards):
        card = cards[name]
        if card.precision not in UNIFORM_PRECISIONS or name.endswith((NATURAL_SUFFIX, "-tradeoff")):
            continue
        source = (card.training or {}).get("init_from") or name
        families.setdefault(source, []).append(name)
    adv, cor = [], []
    for source, names in sorted(families.items()):
        have = [m for m in names if m in zoo and m in corr and zoo[m].bits is not None]
        have.sort(key=lambda m: -zoo[m].bits)
        line = []
        for i, hi_m in enumerate(have):
            for lo_m in have[i + 1:]:
                if zoo[hi_m].bits == zoo[lo_m].bits:
                    continue
                pair = _both_tests((zoo[hi_m], corr[hi_m]), (zoo[lo_m], corr[lo_m]))
                if pair is None:
                    continue
                (da, diff_a, _), (dc, diff_c, _) = pair
                adv.append(da)
                cor.append(dc)
                line.append(f"{hi_m} vs {lo_m}: L∞ {diff_a:+.1f} pp{'*' if da else ''}, corruptions {diff_c:+.1f} pp"
                            f"{'*' if dc else ''}")
        if have:
            f.evidence.append(f"family {source} (" + ", ".join(f"{m} {zoo[m].bits:g} bits: L∞ {100 * zoo[m].worst_case_acc:.1f} %, "
                                                                  f"corruptions {100 * corr[m].corruptions['mean']:.1f} %"
                                                                  for m in have) + ")")
        f.evidence += [f"  {x}" for x in line]
        missing = [m for m in names if m not in have]
        if missing:
            f.evidence.append(f"family {source}: no L∞ or corruptions record yet for {', '.join(missing)}")
    for source, points in _sweep_points(sweeps, csweeps).items():
        uniform = sorted(((k, v) for k, v in points.items() if k[0] in ("float", "uniform")), key=lambda kv: -kv[0][1])
        line = []
        for i, (khi, hi) in enumerate(uniform):
            for klo, lo in uniform[i + 1:]:
                pair = _both_tests(hi, lo)
                if pair is None:
                    continue
                (da, diff_a, _), (dc, diff_c, _) = pair
                adv.append(da)
                cor.append(dc)
                line.append(f"{khi[1]} vs {klo[1]} bits: L∞ {diff_a:+.1f} pp{'*' if da else ''}, corruptions "
                            f"{diff_c:+.1f} pp{'*' if dc else ''}")
        if line:
            f.evidence.append(f"sweep {source} (uniform post-training, n = {uniform[0][1][0].n}): " + "; ".join(line))
    if adv:
        f.verdict, parts = _two_part_verdict(adv, cor, -1, +1)
        f.evidence.append(f"{parts} (* significant at {int(100 * ALPHA)} %; higher-bit model minus lower-bit model)")
    return f


def collect_studies(root: Path, zoo: dict[str, Result], cards: dict) -> Studies:
    """``zoo``: the leaderboard's selected result per model at its ε, so the findings judge the
    very rows the table ranks."""
    sweeps = read_sweeps(root)
    weights = read_weights(root / WEIGHTS_DIR)
    findings = [_sparse_finding(weights, cards), *_tradeoff_findings(zoo, weights, cards),
                _sensitivity_finding(sweeps), _lgmp_finding(sweeps), _lgmp_finetuned_finding(zoo, cards),
                _deployed_finding(zoo, cards)]
    flips = bit_flip_table(root)
    findings.append(_bit_flip_finding(flips))
    corr = _corruption_records(root)
    csweeps = read_sweeps(root, "corruptions")
    findings += [_robustmq_quantization_finding(zoo, corr, cards, sweeps, csweeps),
                 _robustmq_bits_finding(zoo, corr, cards, sweeps, csweeps)]
    bit_errors, l2, corruptions = bit_error_table(root), l2_table(root), corruption_table(root)
    summary = threat_summary(zoo, cards, l2, corruptions, bit_errors, flips)
    return Studies(sweeps, weights, sweep_table(sweeps), findings, fullset_table(root, zoo), bit_errors, flips,
                   l2, corruptions, summary)
