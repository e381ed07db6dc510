"""The ``results/weights/<model>.json`` record: per-layer weight statistics as result data.

Library code shared by the ``qrobench weights`` command (which writes the records) and the
reports (which read them); it lives here so the reports need not import a command module.
"""

from __future__ import annotations

import json
import platform
import time
from pathlib import Path

from .._version import __version__
from ..errors import QrobenchError

WEIGHTS_SCHEMA = "qrobench-weights-v1"


def measure_model_weights(model, card, command: str) -> dict:
    import torch

    from .measure import layer_table, measure_weights

    return {"schema": WEIGHTS_SCHEMA, "model": card.name, "card_sha256": card.sha256,
            "precision": card.precision, "recipe": card.recipe, "totals": measure_weights(model).as_dict(),
            "layers": layer_table(model), "command": command,
            "versions": {"qrobench": __version__, "torch": torch.__version__, "python": platform.python_version()},
            "timestamp": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}


def read_weights(folder: str | Path) -> dict[str, dict]:
    """model -> its weights file, for every valid file in ``folder`` (none: empty)."""
    out = {}
    for path in sorted(Path(folder).glob("*.json")) if Path(folder).is_dir() else []:
        try:
            d = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as e:
            raise QrobenchError(f"{path} is not readable JSON ({e}); re-run 'qrobench weights'") from None
        if d.get("schema") == WEIGHTS_SCHEMA:
            out[d["model"]] = d
    return out
