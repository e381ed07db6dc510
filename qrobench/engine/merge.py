"""Merging result files that hold different seeds of one evaluation into one multi-seed result.

Each seed of an evaluation is fixed by its seed alone (the engine seeds every batch from it),
so seeds measured in separate processes, sessions or machines combine into exactly the
numbers one ``--repeats k`` run gives. That lets a slow randomised model be evaluated one
seed per core, or one seed per session, without redoing finished seeds.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from ..errors import QrobenchError
from .evaluate import LOW_CLEAN_ACC, aggregate_seeds
from .results import RESULT_SCHEMA, read_result

# What defines the measurement: seeds may only be combined when all of these agree. Device,
# threads and torch version may differ (recorded per source); they do not change the protocol.
MUST_AGREE = ("model", "card_sha256", "dataset", "split", "n", "first_index", "eps", "norm",
              "attacks", "batch_size", "channels_last", "stochastic")


def _load(path: str | os.PathLike) -> dict:
    try:
        d = read_result(path)
    except FileNotFoundError:
        raise QrobenchError(f"result file {path} does not exist") from None
    except (OSError, json.JSONDecodeError) as e:
        raise QrobenchError(f"cannot read {path} as a result JSON ({e})") from None
    if not isinstance(d, dict) or d.get("schema") != RESULT_SCHEMA or not d.get("per_seed"):
        raise QrobenchError(f"{path} is not a qrobench result file with per-seed results "
                            f"(schema {RESULT_SCHEMA!r}, written by 'qrobench run')")
    return d


def _signature(d: dict, key: str):
    v = d.get(key)
    return list(v.items()) if key == "attacks" and isinstance(v, dict) else v  # attack order matters


def merge_results(paths: list[str | os.PathLike]) -> dict:
    """One result dict with the seeds of every file, mean ± std recomputed; refuses files that
    measured something different or repeat a seed."""
    if len(paths) < 2:
        raise QrobenchError("merge needs at least two result files")
    results = [(Path(p), _load(p)) for p in paths]
    first_path, first = results[0]
    for path, d in results[1:]:
        for key in MUST_AGREE:
            if _signature(d, key) != _signature(first, key):
                raise QrobenchError(
                    f"{path} and {first_path} measured different things ({key}: {d.get(key)!r} vs "
                    f"{first.get(key)!r}); only seeds of the same evaluation can be merged")
        if d.get("versions", {}).get("qrobench") != first.get("versions", {}).get("qrobench"):
            raise QrobenchError(f"{path} and {first_path} come from different qrobench versions; "
                                "re-run the older one")
    owner: dict[int, Path] = {}
    runs = []
    for path, d in results:
        for r in d["per_seed"]:
            if r["seed"] in owner:
                raise QrobenchError(f"seed {r['seed']} is in both {owner[r['seed']]} and {path}; "
                                    "each seed may be merged once")
            owner[r["seed"]] = path
            runs.append(r)
    runs.sort(key=lambda r: r["seed"])
    attacks = list(first["attacks"])
    summary = aggregate_seeds(runs, attacks)

    merged = dict(first)
    merged.update(summary)  # the aggregate fields, exactly as evaluate() writes them
    merged["repeats"] = len(runs)
    merged["seed"] = runs[0]["seed"]
    merged["per_seed"] = runs
    merged["total_time_s"] = sum(float(d.get("total_time_s", 0.0)) for _, d in results)
    flags = set().union(*(d.get("flags", []) for _, d in results)) - {"low-clean-accuracy"}
    if summary["clean_acc"] < LOW_CLEAN_ACC:
        flags.add("low-clean-accuracy")
    merged["flags"] = sorted(flags)
    merged["merged_from"] = [src for path, d in results for src in _sources(path, d)]
    merged["timestamp"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    merged["command"] = None  # the CLI fills in the merge command; merged_from keeps the runs'
    return merged


def _sources(path: Path, d: dict) -> list[dict]:
    """The runs behind a file: itself, or, for an earlier merge, the runs it was merged from."""
    if d.get("merged_from"):
        return list(d["merged_from"])
    return [{"file": path.name, "seeds": [r["seed"] for r in d["per_seed"]], "command": d.get("command"),
             "timestamp": d.get("timestamp"), "device": d.get("device"), "threads": d.get("threads"),
             "versions": d.get("versions"), "total_time_s": d.get("total_time_s")}]
