"""The card a submitter writes: what they must state, checked field by field.

A submitter states what cannot be measured (training recipe, licence, reference); everything
that can be measured (sha256, bit-width, sparsity, size, whether the model is random) is
measured by ``qrobench submit`` and a card that contradicts a measurement is refused.
"""

from __future__ import annotations

import json
from pathlib import Path

from ..errors import ModelCardError

# field -> (type, description shown in errors)
REQUIRED = {
    "recipe": (str, "how the model was trained, e.g. 'PGD-10 adversarial training, 200 epochs'"),
    "license": (str, "the licence of the weights, e.g. 'MIT'"),
    "reference": (str, "paper, repository or contact for the model"),
}
OPTIONAL = {
    "name": (str, "must equal --name"),
    "precision": (str, "fp, 4bit, tnn, bnn, mixed or <b>bit; checked against the weights"),
    "quantizer": (str, "how the weights were quantized"),
    "dataset": (str, "must be 'cifar10'"),
    "ensemble": (int, "number of ensemble members (≥ 1)"),
    "noise_coef": ((int, float), "test-time noise coefficient (≥ 0)"),
    "sha256": (str, "sha256 of the checkpoint file you send; checked"),
    "training": (dict, "free-form training details (command, budget, data, selection)"),
}
COMPUTED = ("architecture", "arch_args", "file")  # set from the command line, never from the card
NOT_STATED = "not stated"


def _type_name(t) -> str:
    return t.__name__ if isinstance(t, type) else "number"


def check_submission_card(d, source: str = "<card>") -> dict:
    """Validated submitter fields (with defaults for the optional ones left out)."""
    if not isinstance(d, dict):
        raise ModelCardError(f"submission card {source} must be a JSON object")
    missing = [k for k in REQUIRED if k not in d]
    if missing:
        need = "; ".join(f"{k!r}: {REQUIRED[k][1]}" for k in missing)
        raise ModelCardError(f"submission card {source} is missing field(s) {', '.join(missing)} ({need})")
    for k, (t, desc) in {**REQUIRED, **OPTIONAL}.items():
        if k in d and (not isinstance(d[k], t) or isinstance(d[k], bool)):
            raise ModelCardError(f"submission card {source}: field {k!r} must be a {_type_name(t)} "
                                 f"({desc}), got {type(d[k]).__name__}")
    for k in REQUIRED:
        if not d[k].strip():
            raise ModelCardError(f"submission card {source}: field {k!r} is empty ({REQUIRED[k][1]})")
    if d.get("dataset", "cifar10") != "cifar10":
        raise ModelCardError(f"submission card {source}: field 'dataset' must be 'cifar10' (the "
                             f"leaderboard's dataset), got {d['dataset']!r}")
    if "ensemble" in d and d["ensemble"] < 1:
        raise ModelCardError(f"submission card {source}: field 'ensemble' must be ≥ 1, got {d['ensemble']}")
    if "noise_coef" in d and d["noise_coef"] < 0:
        raise ModelCardError(f"submission card {source}: field 'noise_coef' must be ≥ 0")
    sha = d.get("sha256")
    if sha is not None and (len(sha) != 64 or any(c not in "0123456789abcdef" for c in sha)):
        raise ModelCardError(f"submission card {source}: field 'sha256' must be 64 lowercase hex digits")
    out = {k: d[k] for k in (*REQUIRED, *OPTIONAL) if k in d}
    out["extra"] = {k: v for k, v in d.items() if k not in REQUIRED and k not in OPTIONAL and k not in COMPUTED}
    return out


def read_submission_card(path: str | Path | None) -> tuple[dict, bool]:
    """(validated fields, whether a card was given). Without a card the stated fields read
    'not stated' and the result is flagged ``no-card``."""
    if path is None:
        return {k: NOT_STATED for k in REQUIRED} | {"extra": {}}, False
    path = Path(path)
    if not path.is_file():
        raise ModelCardError(f"--card {path} not found")
    try:
        d = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ModelCardError(f"--card {path} is not valid JSON ({e})") from e
    return check_submission_card(d, str(path)), True
