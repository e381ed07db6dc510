"""Merging result files that hold different seeds of one evaluation into one multi-seed result.

Each seed of an evaluation is fixed by its seed alone (the engine seeds every batch from it),
so seeds measured in separate processes, sessions or machines combine into exactly the
numbers one ``--repeats k`` run gives. That lets a slow randomised model be evaluated one
seed per core, or one seed per session, without redoing finished seeds.
"""

from __future__ import annotations

import dataclasses
import os
import time
from pathlib import Path

from ..errors import QrobenchError
from .results import Result, read_result

# What defines the measurement: seeds may only be combined when all of these agree. Device,
# threads and torch version may differ (recorded per source); they do not change the protocol.
MUST_AGREE = ("model", "card_sha256", "dataset", "split", "n", "first_index", "eps", "norm",
              "attacks", "batch_size", "channels_last", "stochastic")


def _load(path: str | os.PathLike) -> Result:
    r = read_result(path)
    if not r.per_seed:
        raise QrobenchError(f"{path} holds no per-seed results; only files written by 'qrobench run' "
                            "can be merged")
    return r


def _signature(r: Result, key: str):
    v = getattr(r, key)
    return list(v.items()) if key == "attacks" else v  # attack order matters


def merge_results(paths: list[str | os.PathLike], command: str | None = None) -> Result:
    """One result with the seeds of every file, mean ± std recomputed; refuses files that
    measured something different or repeat a seed."""
    if len(paths) < 2:
        raise QrobenchError("merge needs at least two result files")
    results = [(Path(p), _load(p)) for p in paths]
    first_path, first = results[0]
    for path, r in results[1:]:
        for key in MUST_AGREE:
            if _signature(r, key) != _signature(first, key):
                raise QrobenchError(
                    f"{path} and {first_path} measured different things ({key}: {getattr(r, key)!r} vs "
                    f"{getattr(first, key)!r}); only seeds of the same evaluation can be merged")
        if r.qrobench_version != first.qrobench_version:
            raise QrobenchError(f"{path} and {first_path} come from different qrobench versions; "
                                "re-run the older one")
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
        timestamp=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        command=command,  # merged_from keeps each run's own command
    )
    return merged.summarize()


def _sources(path: Path, r: Result) -> list[dict]:
    """The runs behind a file: itself, or, for an earlier merge, the runs it was merged from."""
    if r.merged_from:
        return list(r.merged_from)
    return [{"file": path.name, "seeds": r.seeds, "command": r.command, "timestamp": r.timestamp,
             "device": r.device, "threads": r.threads, "versions": r.versions,
             "total_time_s": r.total_time_s}]
