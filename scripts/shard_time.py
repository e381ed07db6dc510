"""The zoo queue's shard-time rule, in one place for scripts/run_shards.sh (whether a shard still
fits before DEADLINE) and `scripts/zoo_queue.sh status` (what is left): a shard takes as long as
the slowest finished shard of the same attack in the same folder (any seed or K), because a shard
cut off by the session's end loses its work; before any has finished, SHARD_MIN.

As a command: python3 scripts/shard_time.py FOLDER STEM [SHARD_MIN] prints that time in
seconds, or nothing when neither is known.
"""
import json
import sys
from pathlib import Path


def finished_seconds(folder: Path, stem: str) -> list[float]:
    """Wall seconds of every finished shard ``FOLDER/STEM*shard*of*.json`` (unreadable ones skipped)."""
    times = []
    for f in Path(folder).glob(stem + "*shard*of*.json"):
        try:
            times.append(float(json.loads(f.read_text())["total_time_s"]))
        except (ValueError, KeyError, TypeError):
            pass
    return times


def shard_seconds(folder: Path, stem: str, shard_min: str = "") -> float | None:
    """The slowest finished shard's seconds, else ``shard_min`` minutes in seconds, else None."""
    times = finished_seconds(folder, stem)
    if times:
        return max(times)
    return float(shard_min) * 60 if shard_min else None


if __name__ == "__main__":
    seconds = shard_seconds(Path(sys.argv[1]), sys.argv[2], sys.argv[3] if len(sys.argv) > 3 else "")
    if seconds is not None:
        print(round(seconds))
