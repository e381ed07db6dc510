"""Result files: one JSON per run, written atomically so a failure never leaves half a file."""

from __future__ import annotations

import json
import os
import re
import time
from pathlib import Path

RESULT_SCHEMA = "qrobench-result-v1"


def default_output_path(model: str, results_dir: str | os.PathLike = "results/runs") -> Path:
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    safe = re.sub(r"[^A-Za-z0-9._-]", "_", model)
    path = Path(results_dir) / f"{safe}__{stamp}.json"
    k = 1
    while path.exists():
        path = Path(results_dir) / f"{safe}__{stamp}-{k}.json"
        k += 1
    return path


def write_result(result: dict, path: str | os.PathLike) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(result, indent=2) + "\n")
    tmp.replace(path)
    return path


def read_result(path: str | os.PathLike) -> dict:
    return json.loads(Path(path).read_text())
