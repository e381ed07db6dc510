"""Merging result files of one evaluation measured in pieces: by seed, or by attack.

*Seeds*: each seed of an evaluation is fixed by its seed alone (the engine seeds every batch
from it), so seeds measured in separate processes, sessions or machines combine into exactly
the numbers one ``--repeats k`` run gives.

*Shards*: files holding adjacent ranges of whole batches of the same points (``--shard I/K``,
or the ranks of a torchrun) combine into the result of one process over all the points,
identical in every accuracy and mask (shards.py).

*Attacks*: files with the same model, points and seeds but different attacks combine into one
result over the union of the attacks; the worst case is recomputed point by point from the
per-point outcomes, so a slow attack (AutoAttack, Square) can run on its own. The clean
predictions of every file must agree point for point. An attack's random starts are seeded by
its position in the battery, so the merged numbers are those of an equally valid run, not
bit for bit those of one invocation with the whole battery.
"""

from __future__ import annotations

import dataclasses
import itertools
import os
import time
from pathlib import Path

import numpy as np

from ..errors import QrobenchError
from ..protocol import has_eot
from .deployment import combine
from .hardware import int8_class, recorded_cpus
from .outcomes import decode_mask
from .results import Result, SeedResult, read_result

# What defines the measurement: seeds may only be combined when all of these agree. Device,
# threads and torch version may differ (recorded per source); they do not change the protocol.
MUST_AGREE = ("model", "card_sha256", "dataset", "split", "n", "first_index", "eps", "norm",
              "attacks", "batch_size", "channels_last", "stochastic", "cascade", "cascade_from", "score_draw")
# An attack's randomness comes from (seed, attack, batch) alone (seeding.py), so attacks run at
# other batch sizes still combine point by point; each one's batch size goes into its settings.
# (A randomised model's clean pass depends on the batch: the clean-prediction check refuses it.)
# A --cascade-from file joins the files that hold the attacks it continued (_check_continued).
ATTACK_MERGE_MUST_AGREE = tuple(k for k in MUST_AGREE if k not in ("attacks", "batch_size", "cascade_from"))
SHARD_MERGE_MUST_AGREE = tuple(k for k in MUST_AGREE if k not in ("n", "first_index"))


def _load(path: str | os.PathLike) -> Result:
    r = read_result(path)
    if not r.per_seed:
        raise QrobenchError(f"{path} holds no per-seed results; only files written by 'qrobench run' "
                            "can be merged")
    return r


def _signature(r: Result, key: str):
    v = getattr(r, key)
    return list(v.items()) if key == "attacks" else v  # attack order matters


def _check_agreement(path, r: Result, first_path, first: Result, keys, what: str) -> None:
    for key in keys:
        if _signature(r, key) != _signature(first, key):
            raise QrobenchError(f"{path} and {first_path} measured different things ({key}: {getattr(r, key)!r} vs "
                                f"{getattr(first, key)!r}); only {what} can be merged")
    if r.qrobench_version != first.qrobench_version:
        raise QrobenchError(f"{path} and {first_path} come from different qrobench versions; re-run the older one")
    a, b = int8_class(r), int8_class(first)
    if a and b and a != b:
        raise QrobenchError(f"{path} and {first_path} ran this int8 model on CPUs with different int8 dot products "
                            f"({a} vs {b}), on which its integer kernels compute different logits "
                            "(docs/protocol.md §8.8); measure every piece on CPUs of one kind")


def _cpu(results) -> dict | None:
    """The merged file's CPU: the pieces' one CPU, or every distinct one they ran on."""
    seen = []
    for _, r in results:
        for c in recorded_cpus(r):
            if c not in seen:
                seen.append(c)
    return seen[0] if len(seen) == 1 else {"several": seen}


def merge_results(paths: list[str | os.PathLike], command: str | None = None) -> Result:
    """One result with the seeds of every file, mean ± std recomputed; refuses files that
    measured something different or repeat a seed."""
    if len(paths) < 2:
        raise QrobenchError("merge needs at least two result files")
    results = [(Path(p), _load(p)) for p in paths]
    first_path, first = results[0]
    if any(r.first_index != first.first_index for _, r in results[1:]):
        return merge_shards(results, command)
    if any(list(r.attacks) != list(first.attacks) for _, r in results[1:]):
        return _merge_attacks(results, command)
    for path, r in results[1:]:
        _check_agreement(path, r, first_path, first, MUST_AGREE, "seeds of the same evaluation")
    owner: dict[int, Path] = {}
    runs = []
    for path, r in results:
        for s in r.per_seed:
            if s.seed in owner:
                raise QrobenchError(f"seed {s.seed} is in both {owner[s.seed]} and {path}; "
                                    "each seed may be merged once")
            owner[s.seed] = path
            runs.append(s)
    runs.sort(key=lambda s: s.seed)
    merged = dataclasses.replace(
        first,
        per_seed=runs,
        flags=sorted(set().union(*(r.flags for _, r in results))),
        total_time_s=sum(float(r.total_time_s) for _, r in results),
        merged_from=[src for path, r in results for src in _sources(path, r)],
        timestamp=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), cpu=_cpu(results),
        command=command,  # merged_from keeps each run's own command
        diagnostics=None,  # a diagnosis belongs to the numbers it read: re-run qrobench diagnose
        deployment=combine([r.deployment for _, r in results], same_clean_points=False),
    )
    return merged.summarize()


def _check_pointwise(path, r: Result, first_path, first: Result, keys, what: str, hint: str) -> None:
    """A file may join a point-by-point merge (of shards or attacks): same measurement, same
    seeds, and per-point outcomes to combine."""
    _check_agreement(path, r, first_path, first, keys, f"{what} of the same evaluation")
    if r.seeds != first.seeds:
        raise QrobenchError(f"{path} holds seeds {r.seeds} but {first_path} seeds {first.seeds}; {what} can "
                            f"only be merged over the same seeds{hint}")
    if not r.has_outcomes:
        raise QrobenchError(f"{path} holds no per-point outcomes, so it cannot be combined point by point with "
                            "other files; re-run it with qrobench >= 0.3")


def merge_shards(results: list[tuple[Path | str, Result]], command: str | None) -> Result:
    """One result over the union of adjacent shards (files from ``--shard`` or torchrun ranks)."""
    results = sorted(results, key=lambda pr: pr[1].first_index)
    first_path, first = results[0]
    bs = first.batch_size or 0
    for path, r in results:
        _check_pointwise(path, r, first_path, first, SHARD_MERGE_MUST_AGREE, "shards", "")
    for (p0, a), (p1, b) in itertools.pairwise(results):
        if a.first_index + a.n != b.first_index:
            what = "overlap" if a.first_index + a.n > b.first_index else "leave a gap"
            raise QrobenchError(f"{p0} (points {a.first_index}–{a.first_index + a.n - 1}) and {p1} (from point "
                                f"{b.first_index}) {what}; give every shard of the run exactly once")
        if not bs or b.first_index % bs:
            raise QrobenchError(f"{p1} starts at point {b.first_index}, not at a batch boundary (batch size "
                                f"{bs}), so its batches differ from a one-process run; use --shard")
    total = (results[-1][1].first_index + results[-1][1].n) - first.first_index
    whole = {r.shard["n"] for _, r in results if r.shard}
    if len(whole) > 1 or (whole and (first.first_index != 0 or total != whole.pop())):
        counts = sorted({r.shard["count"] for _, r in results if r.shard})
        raise QrobenchError(f"the files cover points {first.first_index}–{first.first_index + total - 1}, not all "
                            f"shards of the run (K = {', '.join(map(str, counts))}); give every shard exactly once")
    seeds = []
    for i, s0 in enumerate(first.per_seed):
        parts = [(r, r.per_seed[i]) for _, r in results]
        clean = np.concatenate([decode_mask(p.outcomes["clean"], r.n) for r, p in parts])
        robust = {a: np.concatenate([decode_mask(p.outcomes[a], r.n) for r, p in parts]) for a in first.attacks}
        times = {a: sum(p.wall_time_s.get(a, 0.0) for _, p in parts) for a in first.attacks}
        zero_grad = {}
        for a in first.attacks:
            vals = [(p.zero_grad_frac[a], r.n) for r, p in parts if a in p.zero_grad_frac]
            if vals:  # weighted by points: the engine averages over batches of equal size
                zero_grad[a] = sum(v * w for v, w in vals) / sum(w for _, w in vals)
        seeds.append(SeedResult.from_masks(s0.seed, clean, robust, wall_time_s=times,
                                           clean_time_s=sum(p.clean_time_s for _, p in parts),
                                           zero_grad_frac=zero_grad))
    merged = dataclasses.replace(
        first, n=total, per_seed=seeds, shard=None,
        flags=sorted(set().union(*(r.flags for _, r in results))),
        total_time_s=max(float(r.total_time_s) for _, r in results),  # shards run side by side
        merged_from=[src for path, r in results for src in _sources(Path(path), r)],
        timestamp=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), cpu=_cpu(results), command=command, diagnostics=None,
        deployment=combine([r.deployment for _, r in results], same_clean_points=False))
    return merged.summarize()


def _merge_attacks(results: list[tuple[Path, Result]], command: str | None) -> Result:
    first_path, first = results[0]
    for path, r in results:
        if r.cascade:
            raise QrobenchError(f"{path} is a --cascade run: its attacks ran only on the points earlier ones "
                                "left standing, so they cannot be combined with other attacks; re-run the "
                                "whole battery with --cascade, or run the attacks without it")
    owner: dict[str, Path] = {}
    for path, r in results:
        _check_pointwise(path, r, first_path, first, ATTACK_MERGE_MUST_AGREE, "attacks",
                         " (merge the seeds of each attack first)")
        for a in r.attacks:
            if a in owner:
                raise QrobenchError(f"attack {a} is in both {owner[a]} and {path}; give each attack once "
                                    "(to combine seeds, merge files with the same attacks)")
            owner[a] = path
    continued = _check_continued(results, owner)
    seeds = []
    for i, s0 in enumerate(first.per_seed):
        parts = [r.per_seed[i] for _, r in results]
        if any(p.outcomes["clean"] != s0.outcomes["clean"] for p in parts):
            raise QrobenchError(f"seed {s0.seed}: the clean predictions differ between the files, so they "
                                "did not measure the same model on the same points")
        outcomes = {"clean": s0.outcomes["clean"]}
        robust, times, zero_grad = {}, {}, {}
        for p in parts:
            outcomes.update({a: m for a, m in p.outcomes.items() if a != "clean"})
            robust.update(p.robust_acc)
            times.update(p.wall_time_s)
            zero_grad.update(p.zero_grad_frac)
        worst = decode_mask(outcomes["clean"], first.n)
        for a in robust:
            worst &= decode_mask(outcomes[a], first.n)
        for a, over in continued.items():
            alive = decode_mask(outcomes["clean"], first.n)
            for b in over:
                alive &= decode_mask(outcomes[b], first.n)
            outside = int((decode_mask(outcomes[a], first.n) & ~alive).sum())
            if outside:
                raise QrobenchError(f"seed {s0.seed}: {outside} point(s) survive {a} but not the attacks it continued "
                                    f"({', '.join(over)}) in {owner[over[0]]}: {owner[a]} continued another run's "
                                    "survivors; give the files it was run with --cascade-from on")
        seeds.append(SeedResult(seed=s0.seed, clean_acc=s0.clean_acc, robust_acc=robust,
                                worst_case_acc=int(worst.sum()) / first.n, wall_time_s=times,
                                clean_time_s=s0.clean_time_s, zero_grad_frac=zero_grad, outcomes=outcomes))
    attacks = {a: s if r.batch_size == first.batch_size else {**s, "batch_size": r.batch_size}
               for _, r in results for a, s in r.attacks.items()}
    flags = set().union(*(r.flags for _, r in results)) - {"no-eot"}
    if first.stochastic and not has_eot(attacks):
        flags.add("no-eot")
    merged = dataclasses.replace(
        first, attacks=attacks, per_seed=seeds, flags=sorted(flags), cascade_from=continued or None,
        total_time_s=sum(float(r.total_time_s) for _, r in results),
        merged_from=[src for path, r in results for src in _sources(path, r)],
        timestamp=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), cpu=_cpu(results), command=command, diagnostics=None,
        deployment=combine([r.deployment for _, r in results], same_clean_points=True))
    return merged.summarize()


def _check_continued(results: list[tuple[Path, Result]], owner: dict[str, Path]) -> dict[str, list[str]]:
    """Every --cascade-from attack's earlier attacks, each held by another file of the merge (whose
    survivors it attacked: checked point by point by the caller); returns attack → those attacks."""
    continued: dict[str, list[str]] = {}
    for path, r in results:
        for a, over in (r.cascade_from or {}).items():
            absent = [b for b in over if b not in owner]
            if absent:
                raise QrobenchError(f"{path}: {a} ran only on the points {', '.join(over)} left standing "
                                    f"(--cascade-from), so it merges only together with them; add the file(s) "
                                    f"holding {', '.join(absent)}")
            continued[a] = list(over)
    return continued


def _sources(path: Path, r: Result) -> list[dict]:
    """The runs behind a file: itself, or, for an earlier merge, the runs it was merged from."""
    if r.merged_from:
        return list(r.merged_from)
    return [{"file": path.name, "seeds": r.seeds, "attacks": list(r.attacks), "command": r.command,
             **({"shard": r.shard} if r.shard else {}),
             "timestamp": r.timestamp,
             "device": r.device, "threads": r.threads, "versions": r.versions,
             "total_time_s": r.total_time_s}]
