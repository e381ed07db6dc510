"""A run's journal: each finished batch appended and fsync'd next to the output file, so a
run killed at any moment (kill -9, a lost machine) continues with ``--resume`` where it stopped
and ends with the numbers an uninterrupted run gives (each batch's randomness depends on its
seed, attack and batch index alone; shards.py).

Layout (JSON lines): a header ``{"journal": "qrobench-journal-v1", "run": {...}}`` whose
``run`` must equal the resuming run's, then one line per finished batch:
``{"seed": s, "part": "clean" | attack name, "batch": b, "mask": base64 bits, "time": seconds,
"zero_grad": fraction or null}``. A torn last line (the process died mid-write) is ignored.
The caller deletes the journal once the result file is written. A resumed result's
``total_time_s`` adds the recorded seconds of the batches read back to the resuming process's
own time, so that a record's cost is not understated by the kill (the batch the kill cut short
is the one thing not counted).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from ..errors import QrobenchError

JOURNAL_SCHEMA = "qrobench-journal-v1"


def journal_path(output: str | os.PathLike) -> Path:
    output = Path(output)
    return output.with_name(output.name + ".journal")


class Journal:
    """Finished batches of one evaluation; ``path=None`` keeps nothing (the Python API)."""

    def __init__(self, path: str | os.PathLike | None, run: dict, resume: bool = False):
        self.path = Path(path) if path is not None else None
        self.entries: dict[tuple, dict] = {}
        self._fh = None
        self.resumed = False
        self.recovered_time_s = 0.0  # seconds an earlier process spent on the batches read back
        if self.path is None:
            return
        run = json.loads(json.dumps(run))  # the form it takes on disk, for comparison
        if self.path.exists():
            if not resume:
                raise QrobenchError(f"an unfinished run left its journal at {self.path}: add --resume to "
                                    "continue it, or delete the journal to start over")
            self._read(run)
            print(f"resuming from {self.path}: {len(self.entries)} finished batch(es)", file=sys.stderr)
        else:
            if resume:
                print(f"--resume: no journal at {self.path}, starting from the beginning", file=sys.stderr)
            self.path.parent.mkdir(parents=True, exist_ok=True)
        self.resumed = bool(self.entries)
        self.recovered_time_s = float(sum(e.get("time") or 0.0 for e in self.entries.values()))
        self._fh = open(self.path, "a", encoding="utf-8")
        if not self.entries and self.path.stat().st_size == 0:
            self._append({"journal": JOURNAL_SCHEMA, "run": run})

    def _read(self, run: dict) -> None:
        lines = self.path.read_text(encoding="utf-8").splitlines()
        try:
            header = json.loads(lines[0]) if lines else {}
        except json.JSONDecodeError:
            header = {}
        if header.get("journal") != JOURNAL_SCHEMA:
            raise QrobenchError(f"{self.path} is not a qrobench journal; delete it to start over")
        if header.get("run") != run:
            diff = sorted(k for k in set(run) | set(header.get("run", {}))
                          if run.get(k) != header["run"].get(k))
            raise QrobenchError(f"{self.path} belongs to a different run (differs in: {', '.join(diff)}); "
                                "run the same command to resume it, or delete the journal to start over")
        good = [lines[0]]
        for i, line in enumerate(lines[1:], start=2):
            try:
                e = json.loads(line)
            except json.JSONDecodeError:
                if i == len(lines):  # torn by the kill: that batch is simply run again
                    break
                raise QrobenchError(f"{self.path} line {i} is damaged; delete the journal to start over") from None
            self.entries[(e["seed"], e["part"], e["batch"])] = e
            good.append(line)
        text = "\n".join(good) + "\n"
        if text != self.path.read_text(encoding="utf-8"):  # drop the torn tail before appending
            self.path.write_text(text, encoding="utf-8")

    def get(self, seed: int, part: str, batch: int) -> dict | None:
        return self.entries.get((seed, part, batch))

    def record(self, seed: int, part: str, batch: int, mask: str, seconds: float, zero_grad=None,
               extra: dict | None = None) -> None:
        e = {"seed": seed, "part": part, "batch": batch, "mask": mask, "time": seconds, "zero_grad": zero_grad}
        if extra:
            e["extra"] = extra  # e.g. a deployed model's twin agreement / transfer counts
        self.entries[(seed, part, batch)] = e
        if self._fh is not None:
            self._append(e)

    def _append(self, obj: dict) -> None:
        self._fh.write(json.dumps(obj) + "\n")
        self._fh.flush()
        os.fsync(self._fh.fileno())

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None

    def discard(self) -> None:
        """Close and delete a journal this run started (one it resumed is kept): its batches
        cannot be used, and a later --resume must not pick them up."""
        self.close()
        if self.path is not None and not self.resumed:
            self.path.unlink(missing_ok=True)
